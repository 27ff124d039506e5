//! Vector similarity as Cassandra defines it, and the approximate nearest-neighbour graph
//! behind a trait of ours (HNSW from `usearch`).

use std::path::Path;

use parking_lot::RwLock;

use crate::IndexError;

/// `similarity_function` of a vector index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Similarity {
    Cosine,
    DotProduct,
    Euclidean,
}

impl Similarity {
    pub fn parse(s: &str) -> Option<Similarity> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" => Some(Similarity::Cosine),
            "dot_product" => Some(Similarity::DotProduct),
            "euclidean" => Some(Similarity::Euclidean),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Similarity::Cosine => "COSINE",
            Similarity::DotProduct => "DOT_PRODUCT",
            Similarity::Euclidean => "EUCLIDEAN",
        }
    }

    /// The score Cassandra returns, higher is closer: cosine and dot product are mapped from
    /// [-1, 1] to [0, 1] as (1 + x) / 2, euclidean is 1 / (1 + squared distance).
    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Similarity::Cosine => {
                let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
                for (x, y) in a.iter().zip(b) {
                    dot += (*x as f64) * (*y as f64);
                    na += (*x as f64) * (*x as f64);
                    nb += (*y as f64) * (*y as f64);
                }
                let cos = dot / (na.sqrt() * nb.sqrt());
                ((1.0 + cos) / 2.0) as f32
            }
            Similarity::DotProduct => {
                let dot: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (*x as f64) * (*y as f64))
                    .sum();
                ((1.0 + dot) / 2.0) as f32
            }
            Similarity::Euclidean => {
                let d: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| {
                        let d = (*x as f64) - (*y as f64);
                        d * d
                    })
                    .sum();
                (1.0 / (1.0 + d)) as f32
            }
        }
    }
}

/// True when a vector cannot take part in cosine similarity.
pub fn is_zero_vector(v: &[f32]) -> bool {
    v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>() < 1e-20
}

/// Decodes the wire form of `vector<float, n>`: n big-endian floats.
pub fn decode_f32s(b: &[u8]) -> Option<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Graph construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphParams {
    pub dimensions: usize,
    pub similarity: Similarity,
    /// `maximum_node_connections` (HNSW M).
    pub connectivity: usize,
    /// `construction_beam_width` (efConstruction).
    pub construction_beam: usize,
    /// `search_beam_width` (ef at query time, at least k).
    pub search_beam: usize,
    /// Segments with at most this many vectors are searched exactly (a scan of the vectors the
    /// segment holds in memory) instead of through the graph: on high-dimensional data without
    /// structure a graph needs a beam so wide that the scan is both cheaper and exact.
    pub exact_limit: usize,
}

/// An approximate nearest-neighbour graph over vectors named by u64 keys.
pub trait VectorGraph: Send + Sync {
    fn add(&self, key: u64, v: &[f32]) -> Result<(), IndexError>;
    /// Keys of about the `k` nearest vectors, nearest first.
    fn search(&self, q: &[f32], k: usize) -> Result<Vec<u64>, IndexError>;
    /// Keys of exactly the `k` nearest vectors, by scanning them all.
    fn exact_search(&self, q: &[f32], k: usize) -> Result<Vec<u64>, IndexError>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn save(&self, path: &Path) -> Result<(), IndexError>;
}

/// HNSW through usearch. Adds take the write lock because growing the graph reallocates.
pub struct HnswGraph {
    index: RwLock<usearch::Index>,
}

/// Concurrent searches a graph allows (usearch keeps per-thread scratch space).
const SEARCH_THREADS: usize = 64;

fn uerr(e: impl std::fmt::Display) -> IndexError {
    IndexError::Graph(e.to_string())
}

impl HnswGraph {
    fn options(p: &GraphParams) -> usearch::IndexOptions {
        usearch::IndexOptions {
            dimensions: p.dimensions,
            metric: match p.similarity {
                Similarity::Cosine => usearch::MetricKind::Cos,
                Similarity::DotProduct => usearch::MetricKind::IP,
                Similarity::Euclidean => usearch::MetricKind::L2sq,
            },
            quantization: usearch::ScalarKind::F32,
            connectivity: p.connectivity,
            expansion_add: p.construction_beam,
            expansion_search: p.search_beam,
            multi: false,
        }
    }

    pub fn new(p: &GraphParams, capacity: usize) -> Result<HnswGraph, IndexError> {
        let index = usearch::Index::new(&Self::options(p)).map_err(uerr)?;
        index
            .reserve_capacity_and_threads(capacity.max(16), SEARCH_THREADS)
            .map_err(uerr)?;
        Ok(HnswGraph {
            index: RwLock::new(index),
        })
    }

    pub fn load(p: &GraphParams, path: &Path) -> Result<HnswGraph, IndexError> {
        let index = usearch::Index::new(&Self::options(p)).map_err(uerr)?;
        index.load(&path.to_string_lossy()).map_err(uerr)?;
        index
            .reserve_capacity_and_threads(index.size().max(16), SEARCH_THREADS)
            .map_err(uerr)?;
        index.change_expansion_search(p.search_beam);
        if index.dimensions() != p.dimensions {
            return Err(IndexError::Corrupt(format!(
                "{}: {} dimensions, expected {}",
                path.display(),
                index.dimensions(),
                p.dimensions
            )));
        }
        Ok(HnswGraph {
            index: RwLock::new(index),
        })
    }
}

impl HnswGraph {
    /// Adds without growing: the caller reserved room for every key (bulk builds add from
    /// several threads at once, which usearch allows within the reserved capacity).
    pub fn add_reserved(&self, key: u64, v: &[f32]) -> Result<(), IndexError> {
        self.index.read().add(key, v).map_err(uerr)
    }
}

impl VectorGraph for HnswGraph {
    fn add(&self, key: u64, v: &[f32]) -> Result<(), IndexError> {
        let index = self.index.write();
        if index.size() >= index.capacity() {
            index
                .reserve_capacity_and_threads(index.capacity().max(16) * 2, SEARCH_THREADS)
                .map_err(uerr)?;
        }
        index.add(key, v).map_err(uerr)
    }

    fn search(&self, q: &[f32], k: usize) -> Result<Vec<u64>, IndexError> {
        let index = self.index.read();
        if index.size() == 0 {
            return Ok(vec![]);
        }
        Ok(index.search(q, k).map_err(uerr)?.keys)
    }

    fn exact_search(&self, q: &[f32], k: usize) -> Result<Vec<u64>, IndexError> {
        let index = self.index.read();
        if index.size() == 0 {
            return Ok(vec![]);
        }
        Ok(index.exact_search(q, k).map_err(uerr)?.keys)
    }

    fn len(&self) -> usize {
        self.index.read().size()
    }

    fn save(&self, path: &Path) -> Result<(), IndexError> {
        self.index
            .read()
            .save(&path.to_string_lossy())
            .map_err(uerr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_cassandra_definitions() {
        let a = [1.0, 0.0];
        let b = [0.0, 1.0];
        assert!((Similarity::Cosine.score(&a, &a) - 1.0).abs() < 1e-6);
        assert!((Similarity::Cosine.score(&a, &b) - 0.5).abs() < 1e-6);
        assert!((Similarity::Cosine.score(&a, &[-1.0, 0.0]) - 0.0).abs() < 1e-6);
        assert!((Similarity::DotProduct.score(&a, &b) - 0.5).abs() < 1e-6);
        assert!((Similarity::Euclidean.score(&a, &b) - 1.0 / 3.0).abs() < 1e-6);
        assert!((Similarity::Euclidean.score(&a, &a) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn graph_finds_exact_neighbour_and_survives_save() {
        let p = GraphParams {
            dimensions: 8,
            similarity: Similarity::Euclidean,
            connectivity: 16,
            construction_beam: 64,
            search_beam: 64,
            exact_limit: 0,
        };
        let g = HnswGraph::new(&p, 4).unwrap();
        for i in 0..500u64 {
            let v: Vec<f32> = (0..8)
                .map(|d| ((i * 31 + d * 7) % 997) as f32 + i as f32)
                .collect();
            g.add(i, &v).unwrap();
        }
        let q: Vec<f32> = (0..8)
            .map(|d| ((123 * 31 + d * 7) % 997) as f32 + 123.0)
            .collect();
        assert_eq!(g.search(&q, 1).unwrap()[0], 123);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.usearch");
        g.save(&path).unwrap();
        let g2 = HnswGraph::load(&p, &path).unwrap();
        assert_eq!(g2.len(), 500);
        assert_eq!(g2.search(&q, 1).unwrap()[0], 123);
        assert_eq!(g2.exact_search(&q, 3).unwrap()[0], 123);
    }
}
