/// A response body that could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body of {url} is larger than {max_bytes} bytes")]
    TooLarge { url: String, max_bytes: u64 },
    #[error("cannot read the body of {url}")]
    Read {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// Reads a response body whole, refusing more than `max_bytes` (from `Content-Length` when the
/// server sends it, otherwise while streaming), so that a misbehaving server cannot make the
/// process hold an unbounded body.
pub async fn read_body_limited(
    mut response: reqwest::Response,
    max_bytes: u64,
) -> Result<Vec<u8>, BodyError> {
    let url = response.url().to_string();
    let too_large = |url: String| BodyError::TooLarge { url, max_bytes };
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(too_large(url));
    }
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > max_bytes {
                    return Err(too_large(url));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(source) => return Err(BodyError::Read { url, source }),
        }
    }
}
