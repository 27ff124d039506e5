use std::cmp::Ordering;
use std::net::IpAddr;

use bigdecimal::BigDecimal;
use num_bigint::BigInt;
use proptest::prelude::*;
use sibyl_types::{clustering, CqlType, Duration, UdtDef, Value};
use uuid::Uuid;

// ---------------------------------------------------------------- value strategies

fn uuid_v1(t: u64, lsb: u64) -> Uuid {
    let t = t & 0x0fff_ffff_ffff_ffff;
    let msb =
        ((t & 0xffff_ffff) << 32) | (((t >> 32) & 0xffff) << 16) | 0x1000 | ((t >> 48) & 0x0fff);
    Uuid::from_u64_pair(msb, lsb)
}

fn small_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..4,
        any::<u64>(),
        Just(u64::MAX),
        Just(0x8080_8080_8080_8080),
        Just(0x7f7f_7f7f_7f7f_7f7f)
    ]
}

fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MIN_POSITIVE),
        (-3i32..3).prop_map(|x| x as f64 / 2.0),
    ]
}

fn arb_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>(),
        Just(0.0f32),
        Just(-0.0f32),
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        (-3i32..3).prop_map(|x| x as f32 / 2.0),
    ]
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-c\\x00]{0,4}", any::<String>(),]
}

fn arb_blob() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(0u8), Just(1u8), Just(0xffu8), any::<u8>()],
        0..6,
    )
}

fn arb_bigint() -> impl Strategy<Value = BigInt> {
    prop_oneof![
        (-300i64..300).prop_map(BigInt::from),
        any::<i128>().prop_map(BigInt::from),
        (any::<bool>(), prop::collection::vec(any::<u8>(), 1..24)).prop_map(|(neg, b)| {
            let v = BigInt::from_bytes_be(num_bigint::Sign::Plus, &b);
            if neg {
                -v
            } else {
                v
            }
        }),
    ]
}

fn arb_decimal() -> impl Strategy<Value = BigDecimal> {
    (arb_bigint(), -12i64..12).prop_map(|(u, s)| BigDecimal::new(u, s))
}

/// A value of a scalar type (no empty values).
fn arb_scalar(ty: &CqlType) -> BoxedStrategy<Value> {
    use CqlType as T;
    match ty {
        T::Int => prop_oneof![any::<i32>(), -3i32..3]
            .prop_map(Value::Int)
            .boxed(),
        T::Bigint => prop_oneof![any::<i64>(), -3i64..3]
            .prop_map(Value::Bigint)
            .boxed(),
        T::Counter => any::<i64>().prop_map(Value::Counter).boxed(),
        T::Smallint => any::<i16>().prop_map(Value::Smallint).boxed(),
        T::Tinyint => any::<i8>().prop_map(Value::Tinyint).boxed(),
        T::Timestamp => prop_oneof![any::<i64>(), -3i64..3]
            .prop_map(Value::Timestamp)
            .boxed(),
        T::Text => arb_text().prop_map(Value::Text).boxed(),
        T::Ascii => "[ -~\\x00]{0,5}".prop_map(Value::Ascii).boxed(),
        T::Blob => arb_blob().prop_map(Value::Blob).boxed(),
        T::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        T::Double => arb_f64().prop_map(Value::Double).boxed(),
        T::Float => arb_f32().prop_map(Value::Float).boxed(),
        T::Varint => arb_bigint().prop_map(Value::Varint).boxed(),
        T::Decimal => arb_decimal().prop_map(Value::Decimal).boxed(),
        T::Date => prop_oneof![any::<u32>(), (1u32 << 31) - 2..(1u32 << 31) + 2]
            .prop_map(Value::Date)
            .boxed(),
        T::Time => (0i64..=86_399_999_999_999).prop_map(Value::Time).boxed(),
        T::Timeuuid => (prop_oneof![0u64..3, any::<u64>()], small_u64())
            .prop_map(|(t, l)| Value::Timeuuid(uuid_v1(t, l)))
            .boxed(),
        T::Uuid => prop_oneof![
            (prop_oneof![0u64..3, any::<u64>()], small_u64()).prop_map(|(t, l)| uuid_v1(t, l)),
            any::<u128>().prop_map(Uuid::from_u128),
            any::<u128>()
                .prop_map(|x| uuid::Builder::from_random_bytes(x.to_be_bytes()).into_uuid()),
        ]
        .prop_map(Value::Uuid)
        .boxed(),
        T::Inet => prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ]
        .prop_map(Value::Inet)
        .boxed(),
        T::Duration => prop_oneof![
            (0i32..1000, 0i32..1000, 0i64..i64::MAX),
            (-1000i32..=0, -1000i32..=0, i64::MIN..=0),
        ]
        .prop_map(|(months, days, nanos)| {
            Value::Duration(Duration {
                months,
                days,
                nanos,
            })
        })
        .boxed(),
        other => panic!("not scalar: {other:?}"),
    }
}

const SCALARS: &[CqlType] = &[
    CqlType::Int,
    CqlType::Bigint,
    CqlType::Counter,
    CqlType::Smallint,
    CqlType::Tinyint,
    CqlType::Timestamp,
    CqlType::Text,
    CqlType::Ascii,
    CqlType::Blob,
    CqlType::Boolean,
    CqlType::Double,
    CqlType::Float,
    CqlType::Varint,
    CqlType::Decimal,
    CqlType::Date,
    CqlType::Time,
    CqlType::Timeuuid,
    CqlType::Uuid,
    CqlType::Inet,
    CqlType::Duration,
];

fn arb_scalar_type() -> impl Strategy<Value = CqlType> {
    prop::sample::select(SCALARS)
}

fn arb_type() -> impl Strategy<Value = CqlType> {
    arb_scalar_type().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| CqlType::List(Box::new(t))),
            inner
                .clone()
                .prop_map(|t| CqlType::Frozen(Box::new(CqlType::Set(Box::new(t))))),
            (inner.clone(), inner.clone())
                .prop_map(|(k, v)| CqlType::Map(Box::new(k), Box::new(v))),
            prop::collection::vec(inner.clone(), 1..4).prop_map(CqlType::Tuple),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|ts| CqlType::Udt(UdtDef {
                keyspace: "ks".into(),
                name: "u".into(),
                fields: ts
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| (format!("f{i}"), t))
                    .collect(),
            })),
            (inner, 1u32..4).prop_map(|(t, n)| CqlType::Vector(Box::new(t), n)),
        ]
    })
}

fn arb_value(ty: &CqlType) -> BoxedStrategy<Value> {
    use CqlType as T;
    match ty.unfrozen() {
        T::List(e) => prop::collection::vec(arb_value(e), 0..4)
            .prop_map(Value::List)
            .boxed(),
        T::Set(e) => prop::collection::vec(arb_value(e), 0..4)
            .prop_map(Value::Set)
            .boxed(),
        T::Map(k, v) => prop::collection::vec((arb_value(k), arb_value(v)), 0..3)
            .prop_map(Value::Map)
            .boxed(),
        T::Tuple(ts) => ts
            .iter()
            .map(|t| prop::option::of(arb_value(t)))
            .collect::<Vec<_>>()
            .prop_map(Value::Tuple)
            .boxed(),
        T::Udt(u) => u
            .fields
            .iter()
            .map(|(_, t)| prop::option::of(arb_value(t)))
            .collect::<Vec<_>>()
            .prop_map(Value::Udt)
            .boxed(),
        T::Vector(e, n) => prop::collection::vec(arb_value(e), *n as usize)
            .prop_map(Value::Vector)
            .boxed(),
        t => arb_scalar(t),
    }
}

fn arb_typed_value() -> impl Strategy<Value = (CqlType, Value)> {
    arb_type().prop_flat_map(|t| {
        let v = arb_value(&t);
        (Just(t), v)
    })
}

fn ser(ty: &CqlType, v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    v.serialize_as(ty, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn serialize_roundtrip((ty, v) in arb_typed_value()) {
        let bytes = ser(&ty, &v);
        prop_assert_eq!(Value::validate(&ty, &bytes), Ok(()));
        let back = Value::deserialize(&ty, &bytes).unwrap();
        prop_assert_eq!(ser(&ty, &back), bytes.clone());
        prop_assert_eq!(Value::compare(&ty, &bytes, &bytes), Ordering::Equal);
        // Values are equal too (NaN aside): check through Debug, which prints NaN consistently.
        prop_assert_eq!(format!("{back:?}"), format!("{v:?}"));
        // The same value as a clustering/collection element encodes and decodes.
        let enc = clustering::encode_one(&ty, &bytes);
        prop_assert!(enc[0] != 0x00 && enc[0] != 0xff);
        let dec = clustering::decode_one(&ty, &enc).unwrap();
        prop_assert_eq!(Value::compare(&ty, &dec, &bytes), Ordering::Equal);
    }
}

// ---------------------------------------------------------------- clustering

const CLUSTERING_TYPES: &[CqlType] = &[
    CqlType::Int,
    CqlType::Bigint,
    CqlType::Text,
    CqlType::Blob,
    CqlType::Timestamp,
    CqlType::Timeuuid,
    CqlType::Uuid,
    CqlType::Double,
    CqlType::Float,
    CqlType::Boolean,
    CqlType::Varint,
    CqlType::Decimal,
    CqlType::Date,
    CqlType::Smallint,
    CqlType::Tinyint,
    CqlType::Time,
    CqlType::Inet,
    CqlType::Ascii,
];

/// Serialized value bytes, sometimes empty for types that allow it.
fn arb_component(ty: &CqlType) -> BoxedStrategy<Vec<u8>> {
    let t = ty.clone();
    let allows_empty = !matches!(
        ty,
        CqlType::Smallint | CqlType::Tinyint | CqlType::Date | CqlType::Time
    );
    let v = arb_value(ty).prop_map(move |v| ser(&t, &v));
    if allows_empty {
        prop_oneof![1 => Just(Vec::new()), 12 => v].boxed()
    } else {
        v.boxed()
    }
}

fn arb_clustering_type() -> impl Strategy<Value = CqlType> {
    prop_oneof![
        6 => prop::sample::select(CLUSTERING_TYPES),
        1 => prop::collection::vec(prop::sample::select(CLUSTERING_TYPES), 1..3).prop_map(CqlType::Tuple),
        1 => prop::sample::select(CLUSTERING_TYPES).prop_map(|t| CqlType::Frozen(Box::new(CqlType::List(Box::new(t))))),
        1 => (prop::sample::select(CLUSTERING_TYPES), prop::sample::select(CLUSTERING_TYPES))
            .prop_map(|(k, v)| CqlType::Frozen(Box::new(CqlType::Map(Box::new(k), Box::new(v))))),
        1 => Just(CqlType::Vector(Box::new(CqlType::Float), 2)),
    ]
}

type Key = Vec<Vec<u8>>;

fn arb_keys() -> impl Strategy<Value = (Vec<(CqlType, bool)>, Key, Key, Key)> {
    prop::collection::vec((arb_clustering_type(), any::<bool>()), 1..4).prop_flat_map(|types| {
        let n = types.len();
        let key = |types: &Vec<(CqlType, bool)>| {
            let comps: Vec<BoxedStrategy<Vec<u8>>> =
                types.iter().map(|(t, _)| arb_component(t)).collect();
            (comps, 0..=n).prop_map(|(c, len): (Vec<Vec<u8>>, usize)| c[..len.max(1)].to_vec())
        };
        (Just(types.clone()), key(&types), key(&types), key(&types))
    })
}

fn cassandra_cmp(types: &[(CqlType, bool)], a: &Key, b: &Key) -> Ordering {
    for ((ty, desc), (x, y)) in types.iter().zip(a.iter().zip(b.iter())) {
        let c = Value::compare(ty, x, y);
        let c = if *desc { c.reverse() } else { c };
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

fn refs(k: &Key) -> Vec<&[u8]> {
    k.iter().map(|v| v.as_slice()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20000))]

    #[test]
    fn clustering_order((types, a, b, c) in arb_keys()) {
        let ea = clustering::encode(&types, &refs(&a));
        let eb = clustering::encode(&types, &refs(&b));
        let ec = clustering::encode(&types, &refs(&c));
        prop_assert_eq!(ea.cmp(&eb), cassandra_cmp(&types, &a, &b), "a={:?} b={:?}", a, b);
        prop_assert_eq!(eb.cmp(&ec), cassandra_cmp(&types, &b, &c));

        // Round trip: equal in Cassandra's order (canonical form), identical bytes for
        // types without several encodings of one value.
        let da = clustering::decode(&types, &ea).unwrap();
        prop_assert_eq!(da.len(), a.len());
        for (((ty, _), x), y) in types.iter().zip(&a).zip(&da) {
            prop_assert_eq!(Value::compare(ty, x, y), Ordering::Equal);
            prop_assert_eq!(Value::validate(ty, y), Ok(()));
            if matches!(ty, CqlType::Int | CqlType::Bigint | CqlType::Text | CqlType::Blob
                | CqlType::Timestamp | CqlType::Timeuuid | CqlType::Uuid | CqlType::Date
                | CqlType::Inet | CqlType::Ascii | CqlType::Time | CqlType::Smallint) {
                prop_assert_eq!(x, y);
            }
        }
        prop_assert_eq!(clustering::encode(&types, &refs(&da)), ea.clone());

        // Prefix properties: a prefix of `a` sorts before `a`, and prefix_end(prefix) after
        // every extension and before every key greater than the prefix.
        let p = a[..1].to_vec();
        let ep = clustering::encode(&types, &refs(&p));
        let end = clustering::prefix_end(&ep);
        prop_assert!(ea.starts_with(&ep));
        prop_assert!(ep <= ea);
        prop_assert!(ea < end);
        let bp: Key = b[..1].to_vec();
        match cassandra_cmp(&types, &bp, &p) {
            Ordering::Greater => prop_assert!(eb > end),
            Ordering::Less => prop_assert!(eb < ep),
            Ordering::Equal => prop_assert!(ep <= eb && eb < end),
        }
    }
}

// ---------------------------------------------------------------- targeted cases

#[test]
fn deserialize_errors() {
    let e = |t: &CqlType, b: &[u8]| Value::deserialize(t, b).unwrap_err().to_string();
    assert_eq!(e(&CqlType::Int, &[1, 2, 3]), "Expected 4 or 0 byte int (3)");
    assert_eq!(e(&CqlType::Bigint, &[1]), "Expected 8 or 0 byte long (1)");
    assert_eq!(e(&CqlType::Text, &[0xff]), "String didn't validate.");
    assert_eq!(e(&CqlType::Ascii, &[0x80]), "Invalid byte for ascii: -128");
    assert_eq!(
        e(&CqlType::Time, &86_400_000_000_000i64.to_be_bytes()),
        "Invalid time value 86400000000000: must be between 0 and 86399999999999 nanoseconds"
    );
    let v4 = Uuid::from_u128(0x550e8400_e29b_41d4_a716_446655440000);
    assert_eq!(
        e(&CqlType::Timeuuid, v4.as_bytes()),
        "Invalid UUID version 4 for timeuuid"
    );
    let vt = CqlType::Vector(Box::new(CqlType::Float), 3);
    assert!(Value::deserialize(&vt, &[0; 8]).is_err());
    assert_eq!(
        Value::deserialize(&CqlType::Int, &[]),
        Ok(Value::Raw(vec![]))
    );
    assert_eq!(
        Value::deserialize(&CqlType::Text, &[]),
        Ok(Value::Text(String::new()))
    );
    assert!(Value::deserialize(&CqlType::Smallint, &[]).is_err());
}

#[test]
fn vector_wire_format() {
    let vt = CqlType::Vector(Box::new(CqlType::Float), 2);
    let v = Value::Vector(vec![Value::Float(1.0), Value::Float(2.0)]);
    assert_eq!(
        ser(&vt, &v),
        [1.0f32.to_be_bytes(), 2.0f32.to_be_bytes()].concat()
    );
    let vt = CqlType::Vector(Box::new(CqlType::Text), 2);
    let v = Value::Vector(vec![Value::Text("ab".into()), Value::Text("".into())]);
    assert_eq!(ser(&vt, &v), vec![2, b'a', b'b', 0]);
    let long = "x".repeat(200);
    let v = Value::Vector(vec![Value::Text(long.clone()), Value::Text("".into())]);
    let b = ser(&vt, &v);
    assert_eq!(&b[..2], &[0x80, 200]);
    assert_eq!(Value::deserialize(&vt, &b), Ok(v));
}

#[test]
fn compare_specifics() {
    let c = |t: &CqlType, a: Value, b: Value| Value::compare(t, &a.to_bytes(), &b.to_bytes());
    assert_eq!(
        c(&CqlType::Int, Value::Int(-1), Value::Int(1)),
        Ordering::Less
    );
    assert_eq!(
        c(&CqlType::Double, Value::Double(-0.0), Value::Double(0.0)),
        Ordering::Less
    );
    assert_eq!(
        c(
            &CqlType::Double,
            Value::Double(f64::NAN),
            Value::Double(f64::INFINITY)
        ),
        Ordering::Greater
    );
    assert_eq!(
        c(
            &CqlType::Decimal,
            Value::Decimal("1.0".parse().unwrap()),
            Value::Decimal("1.00".parse().unwrap())
        ),
        Ordering::Equal
    );
    assert_eq!(
        Value::compare(&CqlType::Int, &[], &Value::Int(i32::MIN).to_bytes()),
        Ordering::Less
    );
    // UUIDType: version first.
    let v1 = uuid_v1(u64::MAX >> 4, 0);
    let v4 = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000);
    assert_eq!(
        c(&CqlType::Uuid, Value::Uuid(v1), Value::Uuid(v4)),
        Ordering::Less
    );
    // TimeUUIDType: lsb bytes compared signed.
    let a = uuid_v1(5, 0x0000_0000_0000_0000);
    let b = uuid_v1(5, 0x8000_0000_0000_0000);
    assert_eq!(
        c(&CqlType::Timeuuid, Value::Timeuuid(a), Value::Timeuuid(b)),
        Ordering::Greater
    );
    assert_eq!(
        c(&CqlType::Uuid, Value::Uuid(a), Value::Uuid(b)),
        Ordering::Less
    );
    // Tuples: null first, trailing nulls equal to missing.
    let tt = CqlType::Tuple(vec![CqlType::Int, CqlType::Int]);
    let t = |x: Vec<Option<Value>>| ser(&tt, &Value::Tuple(x));
    assert_eq!(
        Value::compare(
            &tt,
            &t(vec![None, Some(Value::Int(1))]),
            &t(vec![Some(Value::Int(0))])
        ),
        Ordering::Less
    );
    assert_eq!(
        Value::compare(
            &tt,
            &t(vec![Some(Value::Int(0)), None]),
            &t(vec![Some(Value::Int(0))])
        ),
        Ordering::Equal
    );
}
