//! instant-acme's HTTP transport over [`crate::client::Fetcher`] (ureq, blocking, run on the
//! runtime's blocking pool): one HTTPS stack for the CLI and the ACME client, and no second
//! HTTP client in the binary.

use crate::client::Fetcher;
use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};
use std::future::Future;
use std::pin::Pin;

/// Sends instant-acme's requests through a [`Fetcher`].
pub(super) struct Transport(pub(super) Fetcher);

impl HttpClient for Transport {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
        let fetcher = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let method = parts.method.to_string();
            let url = parts.uri.to_string();
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let fetched =
                tokio::task::spawn_blocking(move || fetcher.send(&method, &url, &headers, &body))
                    .await
                    .map_err(|e| Error::Other(Box::new(e)))?
                    .map_err(|e| Error::Other(e.into()))?;
            let mut response = http::Response::builder().status(fetched.status);
            for (k, v) in fetched.headers {
                response = response.header(k, v);
            }
            let (parts, ()) = response.body(()).map_err(Error::Http)?.into_parts();
            Ok(BytesResponse {
                parts,
                body: Box::new(Bytes::from(fetched.body)),
            })
        })
    }
}
