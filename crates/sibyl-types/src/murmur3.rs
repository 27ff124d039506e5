//! Cassandra's Murmur3Partitioner: MurmurHash3 x64_128 with Cassandra's sign-extended tail
//! bytes, first 64 bits, `Long.MIN_VALUE` normalized to `Long.MAX_VALUE`.

use crate::TypeError;

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// MurmurHash3 x64_128 (seed 0) as Cassandra computes it, returning both 64-bit halves.
pub fn hash3_x64_128(key: &[u8]) -> (i64, i64) {
    let len = key.len();
    let nblocks = len / 16;
    let mut h1: u64 = 0;
    let mut h2: u64 = 0;
    for i in 0..nblocks {
        let b = &key[i * 16..i * 16 + 16];
        let mut k1 = u64::from_le_bytes(b[0..8].try_into().unwrap());
        let mut k2 = u64::from_le_bytes(b[8..16].try_into().unwrap());
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1.rotate_left(27).wrapping_add(h2);
        h1 = h1.wrapping_mul(5).wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2.rotate_left(31).wrapping_add(h1);
        h2 = h2.wrapping_mul(5).wrapping_add(0x3849_5ab5);
    }
    let tail = &key[nblocks * 16..];
    // Cassandra reads tail bytes as signed Java bytes and sign-extends them before shifting.
    let sx = |i: usize| tail[i] as i8 as i64 as u64;
    let mut k1: u64 = 0;
    let mut k2: u64 = 0;
    let rem = tail.len();
    if rem > 8 {
        for i in (8..rem).rev() {
            k2 ^= sx(i) << ((i - 8) * 8);
        }
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    if rem > 0 {
        for i in (0..rem.min(8)).rev() {
            k1 ^= sx(i) << (i * 8);
        }
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }
    h1 ^= len as u64;
    h2 ^= len as u64;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1 as i64, h2 as i64)
}

/// The raw first 64 bits of the hash (what the Python driver's `murmur3()` returns).
pub fn murmur3_raw(key: &[u8]) -> i64 {
    hash3_x64_128(key).0
}

/// The Murmur3Partitioner token of a partition key. The empty key is the minimum token
/// (`Long.MIN_VALUE`); a hash of `Long.MIN_VALUE` is normalized to `Long.MAX_VALUE`.
pub fn token(key: &[u8]) -> i64 {
    if key.is_empty() {
        return i64::MIN;
    }
    match murmur3_raw(key) {
        i64::MIN => i64::MAX,
        v => v,
    }
}

/// The partition key bytes from its components (CompositeType for several components).
pub fn compose_partition_key(components: &[&[u8]]) -> Vec<u8> {
    if components.len() == 1 {
        return components[0].to_vec();
    }
    let mut out = Vec::with_capacity(components.iter().map(|c| c.len() + 3).sum());
    for c in components {
        out.extend_from_slice(&(c.len() as u16).to_be_bytes());
        out.extend_from_slice(c);
        out.push(0);
    }
    out
}

/// Split a partition key into its `n` components (inverse of [`compose_partition_key`]).
pub fn decompose_partition_key(n: usize, key: &[u8]) -> Result<Vec<Vec<u8>>, TypeError> {
    if n == 1 {
        return Ok(vec![key.to_vec()]);
    }
    let mut out = Vec::with_capacity(n);
    let mut rest = key;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(TypeError::invalid(
                "Not enough bytes to read composite component length",
            ));
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        if rest.len() < len + 1 {
            return Err(TypeError::invalid(format!(
                "Not enough bytes to read {len}th component"
            )));
        }
        out.push(rest[..len].to_vec());
        if rest[len] != 0 {
            return Err(TypeError::invalid(
                "Invalid composite end-of-component byte",
            ));
        }
        rest = &rest[len + 1..];
    }
    if out.len() != n {
        return Err(TypeError::invalid(format!(
            "Expected {n} partition key components, got {}",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values computed with the Python driver's `cassandra.murmur3.murmur3` for
    /// key(n) = bytes((i*37 + 11*n + 200) % 256 for i in range(n)).
    const VECTORS: &[(usize, i64)] = &[
        (0, 0),
        (1, 7316998551959115067),
        (2, 6505980031583980249),
        (3, -6936876350028357936),
        (4, -7515457986510719892),
        (5, -4983501530865190306),
        (6, 247221221497301712),
        (7, 2274288803669370769),
        (8, -1796305224942692659),
        (9, 4206778042242017196),
        (10, -3120844233357700505),
        (11, -3733263852717346457),
        (12, -7941652402913608987),
        (13, 5458674433976298388),
        (14, 7444518282649948234),
        (15, 6923192910137903113),
        (16, -4751524220994803341),
        (17, -5312117650806612252),
        (18, -1601737202008091340),
        (19, -1752171310684958968),
        (20, -6077624267252512976),
        (21, -558398859433767397),
        (22, -5377412413124134310),
        (23, 6394021941552303134),
        (24, -9077529183522010790),
        (25, 2610806494181819010),
        (26, -2277593268448153912),
        (27, -3994591444382668171),
        (28, -654118299242064524),
        (29, -2924563995340301318),
        (30, -9130373117227427993),
        (31, 5503402492994124186),
        (32, 7326561471285777443),
        (33, -1500913236161230891),
        (34, 1079116633967103683),
        (35, 4335060429004544950),
        (36, -6389576799695798336),
        (37, -8144044375227618565),
        (38, -5241352082059049104),
        (39, 8856333503478307655),
        (40, -2499073962412315583),
    ];

    #[test]
    fn driver_vectors() {
        for &(n, expected) in VECTORS {
            let key: Vec<u8> = (0..n)
                .map(|i| ((i * 37 + 11 * n + 200) % 256) as u8)
                .collect();
            assert_eq!(murmur3_raw(&key), expected, "length {n}");
        }
        assert_eq!(murmur3_raw(b"abc"), -5434086359492102041);
        assert_eq!(murmur3_raw(b"hello"), -3758069500696749310);
        assert_eq!(murmur3_raw(&[0, 0, 0, 1]), -4069959284402364209);
        assert_eq!(murmur3_raw(b"cassandra"), 356242581507269238);
        assert_eq!(murmur3_raw(&[0xff; 17]), -4128212798341382003);
        assert_eq!(token(b""), i64::MIN);
        assert_eq!(token(b"hello"), -3758069500696749310);
    }

    #[test]
    fn composite() {
        let k = compose_partition_key(&[b"ab", b"", b"c"]);
        assert_eq!(k, vec![0, 2, b'a', b'b', 0, 0, 0, 0, 0, 1, b'c', 0]);
        assert_eq!(
            decompose_partition_key(3, &k).unwrap(),
            vec![b"ab".to_vec(), vec![], b"c".to_vec()]
        );
        assert!(decompose_partition_key(2, &k).is_err());
        assert_eq!(compose_partition_key(&[b"xy"]), b"xy".to_vec());
        assert_eq!(
            decompose_partition_key(1, b"xy").unwrap(),
            vec![b"xy".to_vec()]
        );
    }
}
