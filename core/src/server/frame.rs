//! The server's side of Kafka's framing (the shared parts are in
//! [`crate::protocol::frame`]): requests in, responses out. Decoding checks everything a hostile or buggy peer could get wrong
//! (size, API key, version, leftover bytes) and never panics.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::versions;
use crate::protocol::frame::framed;

/// One decoded request.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) api_key: ApiKey,
    pub(crate) version: i16,
    pub(crate) correlation_id: i32,
    pub(crate) client_id: String,
    pub(crate) body: RequestKind,
}

/// Why a frame could not be turned into a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The connection must be closed: the stream can no longer be trusted.
    Close(String),
    /// An ApiVersions request at a version above ours: Kafka answers with
    /// UNSUPPORTED_VERSION in a v0 body so the client can retry lower.
    ApiVersionsTooNew { correlation_id: i32 },
}

/// Decodes a request frame (without its length prefix).
pub(crate) fn decode_request(frame: Bytes) -> Result<Request, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::Close(format!("request of {} bytes is shorter than a header", frame.len())));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key =
        ApiKey::try_from(raw_key).map_err(|_| FrameError::Close(format!("unknown API key {raw_key}")))?;
    let Some(range) = versions::supported(api_key) else {
        return Err(FrameError::Close(format!("API {api_key:?} (key {raw_key}) is not supported")));
    };
    if version < range.0 || version > range.1 {
        if api_key == ApiKey::ApiVersions && version > range.1 {
            return Err(FrameError::ApiVersionsTooNew { correlation_id });
        }
        return Err(FrameError::Close(format!(
            "{api_key:?} v{version} is not supported (supported: v{}-v{})",
            range.0, range.1
        )));
    }
    // The decoders index into the buffer; a malformed frame must not take
    // the connection task (or the process) down with it.
    let original = frame.clone();
    let decoded = std::panic::catch_unwind(move || {
        let mut buf = frame;
        let header = RequestHeader::decode(&mut buf, api_key.request_header_version(version))
            .map_err(|e| format!("request header: {e}"))?;
        let body = RequestKind::decode(api_key, &mut buf, version).map_err(|e| format!("{e:#}"))?;
        // librdkafka 2.x pads some requests (Metadata v12) with a few zero
        // bytes, and Kafka does not object; anything else left over means
        // the frame is not what its header claims.
        if buf.iter().any(|&b| b != 0) {
            return Err(format!("{} bytes left over after the request body", buf.remaining()));
        }
        Ok((header, body))
    });
    match decoded {
        Ok(Ok((header, body))) => Ok(Request {
            api_key,
            version,
            correlation_id,
            client_id: header.client_id.map(|s| s.to_string()).unwrap_or_default(),
            body,
        }),
        Ok(Err(reason)) => {
            let head: String = original.iter().take(48).map(|b| format!("{b:02x}")).collect();
            Err(FrameError::Close(format!(
                "malformed {api_key:?} v{version} request: {reason} (frame starts {head})"
            )))
        }
        Err(_) => {
            Err(FrameError::Close(format!("malformed {api_key:?} v{version} request (decoder panicked)")))
        }
    }
}

/// Encodes a response with its header and length prefix.
///
/// # Errors
/// When the message cannot be encoded at `version` (a field this version
/// lacks was set): a bug on our side, reported rather than sent garbled.
pub(crate) fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, String> {
    // A fetch response carries megabytes of record batches: size it once
    // rather than grow it by doubling (each growth a copy and fresh pages).
    let capacity = match body {
        ResponseKind::Fetch(fetch) => fetch.compute_size(version).unwrap_or(0) + 64,
        _ => 256,
    };
    framed(capacity, |out| {
        let header = ResponseHeader::default().with_correlation_id(correlation_id);
        header
            .encode(out, api_key.response_header_version(version))
            .map_err(|e| format!("{api_key:?} v{version} response header: {e}"))?;
        body.encode(out, version).map_err(|e| format!("{api_key:?} v{version} response: {e:#}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn frame(key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut out = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")))
            .encode(&mut out, key.request_header_version(version))
            .unwrap();
        body.encode(&mut out, version).unwrap();
        out.freeze()
    }

    #[test]
    fn a_valid_request_decodes_with_its_header() {
        let req = decode_request(frame(ApiKey::Metadata, 9, &MetadataRequest::default())).unwrap();
        assert_eq!((req.api_key, req.version, req.correlation_id), (ApiKey::Metadata, 9, 7));
        assert_eq!(req.client_id, "t");
    }

    #[test]
    fn leftover_bytes_close_the_connection_unless_they_are_zero_padding() {
        let mut padded = BytesMut::from(&frame(ApiKey::Metadata, 12, &MetadataRequest::default())[..]);
        padded.put_slice(&[0, 0, 0]);
        assert!(decode_request(padded.freeze()).is_ok(), "librdkafka's zero padding is accepted");
        let mut f = BytesMut::from(&frame(ApiKey::Metadata, 9, &MetadataRequest::default())[..]);
        f.put_u8(7);
        let err = decode_request(f.freeze()).unwrap_err();
        assert!(matches!(&err, FrameError::Close(m) if m.contains("left over")), "{err:?}");
    }

    #[test]
    fn truncated_and_unknown_requests_are_refused() {
        let f = frame(ApiKey::Metadata, 9, &MetadataRequest::default());
        for cut in 0..f.len() {
            assert!(decode_request(f.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut bad_key = BytesMut::from(&f[..]);
        bad_key[0..2].copy_from_slice(&999i16.to_be_bytes());
        assert!(
            matches!(decode_request(bad_key.freeze()), Err(FrameError::Close(m)) if m.contains("unknown API key"))
        );
        let sasl =
            frame(ApiKey::SaslHandshake, 1, &kafka_protocol::messages::SaslHandshakeRequest::default());
        assert!(matches!(decode_request(sasl), Err(FrameError::Close(m)) if m.contains("not supported")));
    }

    #[test]
    fn api_versions_above_ours_asks_for_a_v0_answer() {
        let mut f = BytesMut::from(&frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())[..]);
        f[2..4].copy_from_slice(&99i16.to_be_bytes());
        assert_eq!(
            decode_request(f.freeze()).unwrap_err(),
            FrameError::ApiVersionsTooNew { correlation_id: 7 }
        );
    }
}
