//! The one text policy for every name and key a user gives: service unique and friendly
//! names, environment unique names and domain suffixes, asset paths, variable keys,
//! subaccount and API key friendly names; and the looser rule for variable values.
//!
//! SECURITY: stored names are printed by the CLI on terminals and shown by the console, and
//! asset paths end up in URLs people read: characters that drive a terminal, reorder text or
//! hide in it would let one account forge what another reads (`/\u{202E}gnp.exe` displays as
//! `/exe.png`).

use super::{RuleError, rule};

/// Why a character is refused in a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// C0 (U+0000–U+001F), DEL and C1 (U+0080–U+009F) control characters.
    Control,
    /// Bidirectional embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069).
    Bidi,
    /// Zero-width characters, directional marks and the byte-order mark (U+200B–U+200F,
    /// U+FEFF).
    Invisible,
    /// One-, two- and three-dot leaders (U+2024–U+2026), which read as `.`, `..` and `...`
    /// (refused in asset paths only).
    DotLeader,
}

impl Class {
    /// How a refusal message names the class.
    pub fn describe(self) -> &'static str {
        match self {
            Class::Control => "a control character",
            Class::Bidi => "a bidirectional control character",
            Class::Invisible => "a zero-width or byte-order-mark character",
            Class::DotLeader => "a dot leader, which reads as `.`",
        }
    }
}

/// The class of `c` when names may not hold it (dot leaders are not included: see
/// [`path_class`]).
pub fn name_class(c: char) -> Option<Class> {
    match c {
        c if c.is_control() => Some(Class::Control),
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => Some(Class::Bidi),
        '\u{200B}'..='\u{200F}' | '\u{FEFF}' => Some(Class::Invisible),
        _ => None,
    }
}

/// The class of `c` when asset paths may not hold it: [`name_class`] plus dot leaders.
pub fn path_class(c: char) -> Option<Class> {
    match c {
        '\u{2024}'..='\u{2026}' => Some(Class::DotLeader),
        c => name_class(c),
    }
}

/// `U+202E`: how messages name a character.
pub fn codepoint(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

fn refuse(field: &str, c: char, class: Class) -> Result<(), RuleError> {
    rule(format!(
        "{field} contains {} ({}), which is not allowed",
        codepoint(c),
        class.describe()
    ))
}

/// Checks a name or key the user gives (`field` names it in the message, for example
/// `UniqueName`): no control, bidirectional-control, zero-width or BOM character.
pub fn check_name(field: &str, value: &str) -> Result<(), RuleError> {
    match value.chars().find_map(|c| name_class(c).map(|k| (c, k))) {
        Some((c, class)) => refuse(field, c, class),
        None => Ok(()),
    }
}

/// Checks an asset path's characters: [`check_name`] plus dot leaders.
pub fn check_path(field: &str, value: &str) -> Result<(), RuleError> {
    match value.chars().find_map(|c| path_class(c).map(|k| (c, k))) {
        Some((c, class)) => refuse(field, c, class),
        None => Ok(()),
    }
}

/// Checks a value (a variable's): any text but NUL.
pub fn check_value(field: &str, value: &str) -> Result<(), RuleError> {
    if value.contains('\0') {
        return refuse(field, '\0', Class::Control);
    }
    Ok(())
}

/// `s` with every character a name may not hold written as `\u{…}`, for printing stored
/// text that predates the policy (defence in depth for the CLI).
pub fn escape_for_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if name_class(c).is_some() {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (black-box test): each of these was accepted and stored.
    #[test]
    fn each_refused_class_is_named_with_its_codepoint() {
        let cases = [
            ("\u{1b}[31m", "U+001B", "control"),
            ("a\tb", "U+0009", "control"),
            ("a\u{85}b", "U+0085", "control"),
            ("a\u{7f}", "U+007F", "control"),
            ("\u{202E}gnp.exe", "U+202E", "bidirectional"),
            ("a\u{202A}", "U+202A", "bidirectional"),
            ("a\u{2066}", "U+2066", "bidirectional"),
            ("a\u{2069}", "U+2069", "bidirectional"),
            ("\u{FEFF}a", "U+FEFF", "zero-width or byte-order-mark"),
            ("a\u{200B}b", "U+200B", "zero-width"),
            ("a\u{200F}b", "U+200F", "zero-width"),
        ];
        for (value, code, class) in cases {
            let e = check_name("UniqueName", value).unwrap_err().0;
            assert!(e.starts_with("UniqueName contains "), "{e}");
            assert!(e.contains(code) && e.contains(class), "{value:?}: {e}");
            let e = check_path("Path", value).unwrap_err().0;
            assert!(e.contains(code) && e.contains(class), "{value:?}: {e}");
        }
        for leader in ["\u{2024}\u{2024}", "a\u{2025}", "\u{2026}"] {
            assert!(check_name("FriendlyName", leader).is_ok());
            let e = check_path("Path", leader).unwrap_err().0;
            assert!(e.contains("dot leader"), "{e}");
        }
    }

    #[test]
    fn ordinary_text_passes() {
        for ok in ["example", "Café menu", "日本語", "a-b_c.d", "emoji 🎉", "→"] {
            assert!(check_name("FriendlyName", ok).is_ok(), "{ok}");
            assert!(check_path("Path", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn values_refuse_only_nul() {
        assert!(check_value("Value", "line 1\nline 2\t\u{202E}\u{1b}").is_ok());
        let e = check_value("Value", "a\0b").unwrap_err().0;
        assert!(e.contains("U+0000"), "{e}");
    }

    #[test]
    fn terminal_output_escapes_controls() {
        assert_eq!(escape_for_terminal("a\u{1b}[31mb"), "a\\u{001b}[31mb");
        assert_eq!(escape_for_terminal("/\u{202e}gnp"), "/\\u{202e}gnp");
        assert_eq!(escape_for_terminal("plain ․ text"), "plain ․ text");
    }
}
