//! Framing, segments, version negotiation, robustness.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use sibyl_protocol::messages::*;
use sibyl_protocol::segment::{self, MAX_PAYLOAD_LENGTH};
use sibyl_protocol::*;

fn req_bytes(r: &Request, v: u8, stream: i16) -> BytesMut {
    let mut out = BytesMut::new();
    write_request_frame(&r.to_frame(v, stream), &mut out);
    out
}

fn query(q: &str) -> Request {
    Request::Query {
        query: q.into(),
        params: QueryParams {
            consistency: consistency::ONE,
            ..Default::default()
        },
    }
}

/// v5 envelope bytes for a request (legacy header layout, as inside segments).
fn envelope(r: &Request, stream: i16) -> BytesMut {
    req_bytes(r, 5, stream)
}

fn v5_codec(lz4: bool) -> ServerCodec {
    let mut c = ServerCodec::new(MAX_FRAME_SIZE_DEFAULT);
    c.set_compression(if lz4 {
        Compression::Lz4
    } else {
        Compression::None
    });
    c.enable_v5_framing();
    c
}

#[test]
fn legacy_truncated_returns_none_until_complete() {
    let full = req_bytes(&query("SELECT * FROM t"), 4, 7);
    let mut codec = ServerCodec::new(MAX_FRAME_SIZE_DEFAULT);
    let mut buf = BytesMut::new();
    for (i, b) in full.iter().enumerate() {
        assert!(codec.decode(&mut buf).unwrap().is_none(), "at {i}");
        buf.put_u8(*b);
    }
    let f = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!((f.version, f.stream, f.opcode), (4, 7, opcode::QUERY));
    assert_eq!(codec.version(), Some(4));
    assert!(buf.is_empty());
}

#[test]
fn legacy_two_frames_in_one_buffer_and_version_mismatch() {
    let mut buf = req_bytes(&Request::Options, 4, 1);
    buf.extend_from_slice(&req_bytes(&Request::Options, 4, 2));
    buf.extend_from_slice(&req_bytes(&Request::Options, 5, 3));
    let mut codec = ServerCodec::new(MAX_FRAME_SIZE_DEFAULT);
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap().stream, 1);
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap().stream, 2);
    match codec.decode(&mut buf) {
        Err(ProtocolError::Malformed { message, stream }) => {
            assert!(message.contains("Invalid message version"), "{message}");
            assert_eq!(stream, Some(3));
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn unsupported_versions_answered_like_cassandra() {
    for (first, expect_header) in [
        (0x42u8, 0x85u8),
        (0x41, 0x85),
        (6, 0x85),
        (3, 0x83),
        (2, 0x82),
        (1, 0x81),
    ] {
        let mut codec = ServerCodec::new(MAX_FRAME_SIZE_DEFAULT);
        let mut buf = BytesMut::new();
        buf.put_u8(first);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        // flags, stream
        if first <= 2 {
            buf.put_slice(&[0, 5]);
        } else {
            buf.put_slice(&[0, 0, 5]);
        }
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::UnsupportedVersion {
                version: first,
                stream: 5
            }
        );
        let msg = err.to_string();
        assert_eq!(
            msg,
            format!("Invalid or unsupported protocol version ({first}); supported versions are (4/v4, 5/v5)")
        );
        let mut out = BytesMut::new();
        encode_protocol_error(&err, &mut out);
        assert_eq!(out[0], expect_header);
        let (stream, body_at) = if first <= 2 {
            (out[2] as i8 as i16, 8)
        } else {
            (i16::from_be_bytes([out[2], out[3]]), 9)
        };
        assert_eq!(stream, 5);
        assert_eq!(out[body_at - 5], opcode::ERROR);
        let body = Bytes::copy_from_slice(&out[body_at..]);
        match Response::decode(4, opcode::ERROR, body).unwrap() {
            Response::Error(e) => {
                assert_eq!(e.code, error_code::PROTOCOL_ERROR);
                assert!(e.message.contains("unsupported protocol version"));
            }
            o => panic!("{o:?}"),
        }
    }
}

#[test]
fn beta_flag_on_v5_is_accepted() {
    let mut f = Request::Options.to_frame(5, 0);
    f.flags |= flags::USE_BETA;
    let mut buf = BytesMut::new();
    write_request_frame(&f, &mut buf);
    let mut codec = ServerCodec::new(MAX_FRAME_SIZE_DEFAULT);
    assert_eq!(
        codec.decode(&mut buf).unwrap().unwrap().opcode,
        opcode::OPTIONS
    );
}

#[test]
fn response_direction_and_bad_opcodes_rejected() {
    let mut buf = req_bytes(&Request::Options, 4, 0);
    buf[0] |= 0x80;
    assert!(matches!(
        ServerCodec::new(1024).decode(&mut buf),
        Err(ProtocolError::Malformed { .. })
    ));
    let mut buf = req_bytes(&Request::Options, 4, 0);
    buf[4] = opcode::READY;
    assert!(ServerCodec::new(1024).decode(&mut buf).is_err());
    let mut buf = req_bytes(&Request::Options, 4, 0);
    buf[4] = 0x33;
    assert!(ServerCodec::new(1024).decode(&mut buf).is_err());
}

#[test]
fn frame_too_large_is_skipped() {
    let big = query(&"x".repeat(5000));
    let mut buf = req_bytes(&big, 4, 11);
    buf.extend_from_slice(&req_bytes(&Request::Options, 4, 12));
    let mut codec = ServerCodec::new(1024);
    // Deliver the first 100 bytes only.
    let mut rest = buf.split_off(100);
    match codec.decode(&mut buf) {
        Err(e @ ProtocolError::FrameTooLarge { .. }) => {
            assert_eq!(e.stream(), Some(11));
            assert!(!e.is_fatal());
            assert_eq!(e.error_code(), error_code::INVALID);
        }
        o => panic!("{o:?}"),
    }
    assert!(codec
        .decode(&mut rest)
        .unwrap()
        .is_some_and(|f| f.stream == 12));
}

#[test]
fn lz4_and_snappy_frames_roundtrip_through_codec() {
    for c in [Compression::Lz4, Compression::Snappy] {
        let mut codec = ServerCodec::new(MAX_FRAME_SIZE_DEFAULT);
        codec.set_compression(c);
        let body = Bytes::from("hello ".repeat(100));
        let resp = Frame {
            version: 4,
            flags: 0,
            stream: 3,
            opcode: opcode::AUTH_SUCCESS,
            body: body.clone(),
        };
        let mut out = BytesMut::new();
        codec.encode(&resp, &mut out);
        assert_eq!(out[0], 0x84);
        assert_eq!(out[1] & flags::COMPRESSION, flags::COMPRESSION);
        assert!(out.len() < 9 + body.len());
        // Turn it into a request frame and decode it with the same codec.
        out[0] = 0x04;
        out[4] = opcode::AUTH_RESPONSE;
        let f = codec.decode(&mut out).unwrap().unwrap();
        assert_eq!(f.body, body);
        assert_eq!(f.flags & flags::COMPRESSION, 0);
        // Empty bodies are never compressed.
        let mut out = BytesMut::new();
        codec.encode(&Envelope::new(0, Response::Ready).to_frame(4), &mut out);
        assert_eq!(out[1], 0);
    }
}

#[test]
fn compressed_frame_without_negotiation_is_error() {
    let mut buf = req_bytes(&Request::Options, 4, 0);
    buf[1] |= flags::COMPRESSION;
    assert!(ServerCodec::new(1024).decode(&mut buf).is_err());
}

#[test]
fn v5_self_contained_with_several_envelopes() {
    for lz4 in [false, true] {
        let mut payload = BytesMut::new();
        for i in 0..10 {
            payload.extend_from_slice(&envelope(&query(&format!("SELECT {i}")), i));
        }
        let mut wire = BytesMut::new();
        segment::encode_segment(&payload, true, lz4, &mut wire);
        let mut codec = v5_codec(lz4);
        // byte by byte: Ok(None) until complete.
        let mut buf = BytesMut::new();
        let mut got = vec![];
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 10);
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f.stream, i as i16);
            assert_eq!(
                Request::from_frame(f).unwrap().request,
                query(&format!("SELECT {i}"))
            );
        }
    }
}

#[test]
fn v5_large_envelope_over_several_segments() {
    for lz4 in [false, true] {
        let big = query(&"y".repeat(300_000));
        let env = envelope(&big, 77);
        let mut wire = BytesMut::new();
        segment::encode_message(&env, lz4, &mut wire);
        // followed by a small self-contained one
        segment::encode_message(&envelope(&Request::Options, 78), lz4, &mut wire);
        let mut codec = v5_codec(lz4);
        let mut rest = wire.split_off(wire.len() / 2);
        assert!(codec.decode(&mut wire).unwrap().is_none());
        wire.unsplit(rest.split());
        let f = codec.decode(&mut wire).unwrap().unwrap();
        assert_eq!(f.stream, 77);
        assert_eq!(Request::from_frame(&f).unwrap().request, big);
        assert_eq!(codec.decode(&mut wire).unwrap().unwrap().stream, 78);
        assert!(codec.decode(&mut wire).unwrap().is_none());
    }
}

#[test]
fn v5_crc_errors_detected() {
    let env = envelope(&Request::Options, 1);
    for lz4 in [false, true] {
        let mut wire = BytesMut::new();
        segment::encode_segment(&env, true, lz4, &mut wire);
        // header corruption
        let mut bad = wire.clone();
        bad[0] ^= 0x01;
        assert!(matches!(
            v5_codec(lz4).decode(&mut bad),
            Err(ProtocolError::Crc { .. })
        ));
        // payload corruption
        let mut bad = wire.clone();
        let n = bad.len();
        bad[n - 6] ^= 0xff;
        assert!(matches!(
            v5_codec(lz4).decode(&mut bad),
            Err(ProtocolError::Crc { .. })
        ));
        // trailer corruption
        let mut bad = wire.clone();
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        assert!(v5_codec(lz4).decode(&mut bad).is_err());
    }
}

#[test]
fn v5_incomplete_envelope_in_self_contained_segment_is_error() {
    let env = envelope(&query("SELECT 1"), 1);
    let mut wire = BytesMut::new();
    segment::encode_segment(&env[..env.len() - 3], true, false, &mut wire);
    assert!(v5_codec(false).decode(&mut wire).is_err());
}

#[test]
fn v5_encode_batch_packs_small_envelopes() {
    let mut codec = v5_codec(false);
    let frames: Vec<Frame> = (0..100)
        .map(|i| Envelope::new(i, Response::Result(ResultBody::Void)).to_frame(5))
        .collect();
    let mut out = BytesMut::new();
    codec.encode_batch(&frames, &mut out);
    // one segment: 6 header bytes + 100 * 13 + 4
    assert_eq!(out.len(), 6 + 100 * 13 + 4);
    let seg = segment::decode_segment(&mut out, false).unwrap().unwrap();
    assert!(seg.self_contained);
    assert!(out.is_empty());
    // big batch spills into several segments, each within the limit
    let frames: Vec<Frame> = (0..30)
        .map(|i| {
            Envelope::new(
                i,
                Response::AuthSuccess(Some(Bytes::from(vec![1u8; 10_000]))),
            )
            .to_frame(5)
        })
        .collect();
    let mut out = BytesMut::new();
    codec.encode_batch(&frames, &mut out);
    let mut n = 0;
    let mut payload = BytesMut::new();
    while let Some(s) = segment::decode_segment(&mut out, false).unwrap() {
        assert!(s.self_contained && s.payload.len() <= MAX_PAYLOAD_LENGTH);
        payload.extend_from_slice(&s.payload);
        n += 1;
    }
    assert_eq!(n, 3);
    assert_eq!(payload.len(), 30 * (9 + 4 + 10_000));
}

#[test]
fn encode_error_uses_connection_framing() {
    let mut codec = v5_codec(false);
    let err = ProtocolError::Malformed {
        message: "bad".into(),
        stream: Some(4),
    };
    let mut out = BytesMut::new();
    codec.encode_error(&err, &mut out);
    let seg = segment::decode_segment(&mut out, false).unwrap().unwrap();
    assert_eq!(seg.payload[0], 0x85);
    assert_eq!(i16::from_be_bytes([seg.payload[2], seg.payload[3]]), 4);
}

#[test]
fn envelope_roundtrip_with_warnings_tracing_payload() {
    for v in [4u8, 5] {
        let mut e = Envelope::new(9, Response::Result(ResultBody::SetKeyspace("k".into())))
            .with_warnings(vec!["w1".into(), "w2".into()])
            .with_tracing_id(uuid::Uuid::from_u128(0x1234));
        e.custom_payload = vec![("a".into(), Bytes::from_static(b"b"))];
        let f = e.to_frame(v);
        assert_eq!(
            f.flags,
            flags::TRACING | flags::WARNING | flags::CUSTOM_PAYLOAD
        );
        assert_eq!(Envelope::from_frame(&f).unwrap(), e);
    }
}

#[test]
fn request_custom_payload_and_tracing() {
    let mut body = BytesMut::new();
    body.put_u16(1);
    body.put_u16(1);
    body.put_slice(b"k");
    body.put_i32(2);
    body.put_slice(b"vv");
    Request::Options.encode(4, &mut body);
    let f = Frame {
        version: 4,
        flags: flags::CUSTOM_PAYLOAD | flags::TRACING,
        stream: 1,
        opcode: opcode::OPTIONS,
        body: body.freeze(),
    };
    let r = Request::from_frame(&f).unwrap();
    assert!(r.tracing);
    assert_eq!(
        r.custom_payload,
        vec![("k".into(), Bytes::from_static(b"vv"))]
    );
}

#[test]
fn malformed_bodies_are_errors_with_stream() {
    // a QUERY whose long string length runs past the body
    let mut body = BytesMut::new();
    body.put_i32(1000);
    body.put_slice(b"abc");
    let f = Frame {
        version: 4,
        flags: 0,
        stream: 42,
        opcode: opcode::QUERY,
        body: body.freeze(),
    };
    let e = Request::from_frame(&f).unwrap_err();
    assert_eq!(e.stream(), Some(42));
    // a huge value count
    let mut body = BytesMut::new();
    body.put_i32(1);
    body.put_slice(b"q");
    body.put_u16(1);
    body.put_u8(0x01);
    body.put_u16(65535);
    assert!(Request::decode(4, opcode::QUERY, body.freeze()).is_err());
}

#[test]
fn consistency_names() {
    assert_eq!(consistency::name(consistency::LOCAL_QUORUM), "LOCAL_QUORUM");
    assert_eq!(
        consistency::from_name("local_one"),
        Some(consistency::LOCAL_ONE)
    );
    assert_eq!(consistency::name(99), "UNKNOWN");
}

// ------------------------------------------------------------------ proptest

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..20).prop_map(Bytes::from)
}

fn arb_value() -> impl Strategy<Value = BoundValue> {
    prop_oneof![
        Just(BoundValue::Null),
        Just(BoundValue::Unset),
        arb_bytes().prop_map(BoundValue::Value)
    ]
}

prop_compose! {
    fn arb_params(v5: bool)(
        consistency in 0u16..11,
        values in prop_oneof![
            Just(Values::None),
            proptest::collection::vec(arb_value(), 0..5).prop_map(Values::Positional),
            proptest::collection::vec(("[a-z]{1,5}", arb_value()), 0..5).prop_map(Values::Named),
        ],
        skip_metadata in any::<bool>(),
        page_size in proptest::option::of(any::<i32>()),
        paging_state in proptest::option::of(arb_bytes()),
        serial_consistency in proptest::option::of(8u16..10),
        default_timestamp in proptest::option::of(any::<i64>()),
        keyspace in proptest::option::of("[a-z_]{1,10}"),
        now_in_seconds in proptest::option::of(any::<i32>()),
    ) -> QueryParams {
        QueryParams {
            consistency, values, skip_metadata, page_size, paging_state, serial_consistency,
            default_timestamp,
            keyspace: if v5 { keyspace } else { None },
            now_in_seconds: if v5 { now_in_seconds } else { None },
        }
    }
}

fn arb_request(v5: bool) -> impl Strategy<Value = Request> {
    prop_oneof![
        proptest::collection::vec(("[A-Z_]{1,8}", "[a-z0-9.]{0,8}"), 0..4)
            .prop_map(Request::Startup),
        Just(Request::Options),
        (".{0,40}", arb_params(v5)).prop_map(|(query, params)| Request::Query { query, params }),
        (".{0,40}", proptest::option::of("[a-z]{1,8}")).prop_map(move |(query, keyspace)| {
            Request::Prepare {
                query,
                keyspace: if v5 { keyspace } else { None },
            }
        }),
        (arb_bytes(), arb_bytes(), arb_params(v5)).prop_map(move |(id, md, params)| {
            Request::Execute {
                id,
                result_metadata_id: v5.then_some(md),
                params,
            }
        }),
        (
            0u8..3,
            proptest::collection::vec(
                (
                    prop_oneof![
                        ".{0,20}".prop_map(BatchQuery::Query),
                        arb_bytes().prop_map(BatchQuery::Prepared)
                    ],
                    proptest::collection::vec(arb_value(), 0..4)
                ),
                0..4
            ),
            0u16..11,
            proptest::option::of(8u16..10),
            proptest::option::of(any::<i64>()),
            proptest::option::of("[a-z]{1,8}"),
            proptest::option::of(any::<i32>()),
        )
            .prop_map(
                move |(
                    kind,
                    statements,
                    consistency,
                    serial_consistency,
                    default_timestamp,
                    ks,
                    now,
                )| {
                    Request::Batch(BatchRequest {
                        kind,
                        statements,
                        consistency,
                        serial_consistency,
                        default_timestamp,
                        keyspace: if v5 { ks } else { None },
                        now_in_seconds: if v5 { now } else { None },
                    })
                }
            ),
        proptest::collection::vec("[A-Z_]{1,15}", 0..3).prop_map(Request::Register),
        proptest::option::of(arb_bytes()).prop_map(Request::AuthResponse),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn prop_request_roundtrip_v4(r in arb_request(false)) {
        let f = r.to_frame(4, 1);
        prop_assert_eq!(Request::decode(4, f.opcode, f.body).unwrap(), r);
    }

    #[test]
    fn prop_request_roundtrip_v5_segments(rs in proptest::collection::vec(arb_request(true), 1..6), lz4 in any::<bool>()) {
        let mut payload = BytesMut::new();
        for (i, r) in rs.iter().enumerate() {
            payload.extend_from_slice(&envelope(r, i as i16));
        }
        let mut wire = BytesMut::new();
        segment::encode_message(&payload, lz4, &mut wire);
        let mut codec = v5_codec(lz4);
        for r in &rs {
            let f = codec.decode(&mut wire).unwrap().unwrap();
            prop_assert_eq!(&Request::from_frame(&f).unwrap().request, r);
        }
        prop_assert!(codec.decode(&mut wire).unwrap().is_none());
    }

    #[test]
    fn prop_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300), v5 in any::<bool>(), lz4 in any::<bool>()) {
        let mut codec = if v5 { v5_codec(lz4) } else { ServerCodec::new(4096) };
        if !v5 && lz4 { codec.set_compression(Compression::Lz4); }
        let mut buf = BytesMut::from(&data[..]);
        for _ in 0..10 {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => { let _ = Request::from_frame(&f); }
                Ok(None) | Err(_) => break,
            }
        }
        for op in 0..0x11u8 {
            let _ = Request::decode(4, op, Bytes::from(data.clone()));
            let _ = Request::decode(5, op, Bytes::from(data.clone()));
            let _ = Response::decode(4, op, Bytes::from(data.clone()));
            let _ = Response::decode(5, op, Bytes::from(data.clone()));
        }
    }

    #[test]
    fn prop_segment_roundtrip(data in proptest::collection::vec(any::<u8>(), 1..2000), sc in any::<bool>(), lz4 in any::<bool>()) {
        let mut out = BytesMut::new();
        segment::encode_segment(&data, sc, lz4, &mut out);
        let s = segment::decode_segment(&mut out, lz4).unwrap().unwrap();
        prop_assert_eq!(&s.payload[..], &data[..]);
        prop_assert_eq!(s.self_contained, sc);
    }
}

/// A result's column specs are encoded once and then copied: every answer sharing them must
/// carry the same bytes a fresh encoding gives, with or without one global table spec.
#[test]
fn shared_result_columns_encode_like_fresh_ones() {
    let spec = |ks: &str, t: &str, n: &str, ty: sibyl_types::CqlType| ColumnSpec {
        keyspace: ks.into(),
        table: t.into(),
        name: n.into(),
        ty,
    };
    let global = vec![
        spec("ks", "t", "k", sibyl_types::CqlType::Int),
        spec("ks", "t", "v", sibyl_types::CqlType::Text),
    ];
    let mixed = vec![
        spec("ks", "t", "k", sibyl_types::CqlType::Int),
        spec(
            "ks",
            "u",
            "v",
            sibyl_types::CqlType::List(Box::new(sibyl_types::CqlType::Blob)),
        ),
    ];
    for specs in [global, mixed] {
        let shared = ResultColumns::new(specs.clone());
        let body = |columns: ResultColumns| {
            let mut w = RowsWriter::new();
            w.push_cell(Some(&[0, 0, 0, 7]));
            w.push_cell(None);
            w.finish_row();
            let mut out = BytesMut::new();
            let rows = Rows::from_writer(columns, Some(Bytes::from_static(b"p")), w);
            Response::Result(ResultBody::Rows(rows)).encode_body(4, &mut out);
            out.freeze()
        };
        let fresh = body(ResultColumns::new(specs.clone()));
        assert_eq!(body(shared.clone()), fresh);
        assert_eq!(
            body(shared.clone()),
            fresh,
            "second use of the cached encoding"
        );
        match Response::decode(4, opcode::RESULT, fresh).unwrap() {
            Response::Result(ResultBody::Rows(r)) => {
                assert_eq!(&r.metadata.columns[..], &specs[..]);
                assert_eq!(r.row_count, 1);
            }
            o => panic!("{o:?}"),
        }
    }
}
