//! Kafka's framing: a 4-byte big-endian length, then a header and a body.
//! Reading a frame refuses a bad length before reading its bytes; writing
//! one patches the length in after the body is encoded.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Reads one frame; `Ok(None)` at a clean end of stream (before a length).
///
/// # Errors
/// A negative length or one above `max_bytes` (the stream is then out of
/// step and must be closed), or an I/O error / EOF inside a frame.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Option<Bytes>, String> {
    let mut len_buf = [0u8; 4];
    match reader.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(format!("read failed: {e}")),
    }
    let len = i32::from_be_bytes(len_buf);
    if len < 0 {
        return Err(format!("negative frame length {len}"));
    }
    if len as usize > max_bytes {
        return Err(format!("frame of {len} bytes exceeds socket.request.max.bytes={max_bytes}"));
    }
    let mut body = BytesMut::zeroed(len as usize);
    reader.read_exact(&mut body).await.map_err(|e| format!("frame of {len} bytes cut short: {e}"))?;
    Ok(Some(body.freeze()))
}

/// A frame: the 4-byte length, then what `encode` writes.
///
/// # Errors
/// Whatever `encode` reports.
pub(crate) fn framed(
    capacity: usize,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), String>,
) -> Result<BytesMut, String> {
    let mut out = BytesMut::with_capacity(capacity);
    out.put_i32(0);
    encode(&mut out)?;
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// A request frame: length, header (`api` at `version`, `correlation_id`,
/// `client_id`) and `body`.
///
/// # Errors
/// When `body` cannot be encoded at `version`.
pub(crate) fn encode_request(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &impl Encodable,
) -> Result<BytesMut, String> {
    framed(256, |out| {
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
            .encode(out, api.request_header_version(version))
            .map_err(|e| format!("encoding the header: {e}"))?;
        body.encode(out, version).map_err(|e| format!("encoding the request: {e}"))
    })
}

/// Decodes a response frame (without its length prefix) to the request
/// `correlation_id` made with `api` at `version`.
///
/// # Errors
/// A header or body that does not decode, an answer to another request,
/// or non-zero bytes left over.
pub(crate) fn decode_response<Resp: Decodable>(
    mut frame: Bytes,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<Resp, String> {
    let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
        .map_err(|e| format!("response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "response for request {} while waiting for {correlation_id}",
            header.correlation_id
        ));
    }
    let resp = Resp::decode(&mut frame, version).map_err(|e| format!("response: {e}"))?;
    if frame.has_remaining() && frame.iter().any(|&b| b != 0) {
        return Err(format!("{} bytes left over after the response", frame.remaining()));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

    #[tokio::test]
    async fn oversized_and_negative_frames_are_refused_before_reading_them() {
        let mut big: &[u8] = &1000i32.to_be_bytes();
        assert!(read_frame(&mut big, 999).await.unwrap_err().contains("exceeds"));
        let mut neg: &[u8] = &(-1i32).to_be_bytes();
        assert!(read_frame(&mut neg, 999).await.unwrap_err().contains("negative"));
        let mut empty: &[u8] = &[];
        assert_eq!(read_frame(&mut empty, 999).await.unwrap(), None);
        let mut short: &[u8] = &[0, 0, 0, 5, 1, 2];
        assert!(read_frame(&mut short, 999).await.unwrap_err().contains("cut short"));
    }

    #[test]
    fn a_request_frame_carries_its_length_and_a_response_must_answer_it() {
        let req = HeartbeatRequest::default().with_generation_id(3);
        let frame = encode_request(ApiKey::Heartbeat, 4, 9, "c", &req).unwrap();
        assert_eq!(i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len() - 4);

        let resp = HeartbeatResponse::default().with_error_code(27);
        let answer = |correlation_id: i32| {
            framed(64, |out| {
                ResponseHeader::default()
                    .with_correlation_id(correlation_id)
                    .encode(out, ApiKey::Heartbeat.response_header_version(4))
                    .map_err(|e| e.to_string())?;
                resp.encode(out, 4).map_err(|e| e.to_string())
            })
            .unwrap()
            .freeze()
            .slice(4..)
        };
        let got: HeartbeatResponse = decode_response(answer(9), ApiKey::Heartbeat, 4, 9).unwrap();
        assert_eq!(got.error_code, 27);
        let wrong = decode_response::<HeartbeatResponse>(answer(8), ApiKey::Heartbeat, 4, 9).unwrap_err();
        assert!(wrong.contains("while waiting for 9"), "{wrong}");
    }
}
