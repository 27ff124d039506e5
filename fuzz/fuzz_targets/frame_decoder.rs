#![no_main]
//! Arbitrary bytes into the server-side framing (legacy and v5, with and without compression)
//! and into the request/response body decoders: nothing may panic.

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sibyl_protocol::messages::Response;
use sibyl_protocol::{Compression, Request, ServerCodec};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut codec = ServerCodec::new(64 * 1024);
    codec.set_compression(match mode & 0x03 {
        0 => Compression::None,
        1 => Compression::Lz4,
        _ => Compression::Snappy,
    });
    if mode & 0x04 != 0 {
        codec.enable_v5_framing();
    }
    // Deliver in two chunks to exercise the incremental paths.
    let split = (mode as usize >> 3).min(rest.len());
    let mut buf = BytesMut::from(&rest[..split]);
    let mut pending = &rest[split..];
    for _ in 0..64 {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                let _ = Request::from_frame(&frame);
            }
            Ok(None) => {
                if pending.is_empty() {
                    break;
                }
                buf.extend_from_slice(pending);
                pending = &[];
            }
            Err(e) => {
                let mut out = BytesMut::new();
                codec.encode_error(&e, &mut out);
                if e.is_fatal() {
                    break;
                }
            }
        }
    }
    let body = Bytes::copy_from_slice(rest);
    let version = if mode & 0x08 != 0 { 5 } else { 4 };
    let _ = Request::decode(version, mode >> 4, body.clone());
    let _ = Response::decode(version, mode >> 4, body);
});
