//! Node configuration: command-line flags over an optional YAML file that uses cassandra.yaml's
//! key names. Unknown flags or keys are refused (exit code 2) rather than silently ignored.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

#[derive(Parser, Debug, Default)]
#[command(
    name = "sibyl",
    version,
    about = "Sibyl: a Cassandra-compatible database node"
)]
pub struct Flags {
    /// YAML configuration file (cassandra.yaml key names).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory holding the commit log, SSTables and schema.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address for internode traffic and CQL clients.
    #[arg(long)]
    pub listen_address: Option<IpAddr>,
    /// CQL native transport port.
    #[arg(long)]
    pub native_port: Option<u16>,
    /// Internode storage port.
    #[arg(long)]
    pub storage_port: Option<u16>,
    /// Comma-separated seed addresses.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<IpAddr>>,
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// Data center name.
    #[arg(long)]
    pub dc: Option<String>,
    #[arg(long)]
    pub rack: Option<String>,
    /// Number of vnode tokens.
    #[arg(long)]
    pub num_tokens: Option<u32>,
    /// Without a command the node starts; a command talks to a running node instead.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where a command finds the running node: its listen address and storage port.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeAddr {
    /// The node's listen address.
    #[arg(long = "host", short = 'H', default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The node's storage (internode) port.
    #[arg(long = "port", short = 'p', default_value_t = 7000)]
    pub port: u16,
}

/// Operations on a running node, in the spirit of nodetool.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Nodes by data center: up/down, state, address, load, tokens, ownership, host id, rack.
    Status {
        /// Show effective ownership for this keyspace's replication.
        keyspace: Option<String>,
        #[command(flatten)]
        node: NodeAddr,
    },
    /// Every token of the ring with its node.
    Ring {
        #[command(flatten)]
        node: NodeAddr,
    },
    /// Token ranges of a keyspace with their replicas.
    Describering {
        keyspace: String,
        #[command(flatten)]
        node: NodeAddr,
    },
    /// Flushes memtables to SSTables (all user tables, a keyspace, or some of its tables).
    Flush {
        keyspace: Option<String>,
        tables: Vec<String>,
        #[command(flatten)]
        node: NodeAddr,
    },
    /// Removes a dead node from the ring: its ranges are copied from the surviving replicas
    /// to the nodes that take them over.
    Removenode {
        /// The dead node's host id (see `status`).
        host_id: uuid::Uuid,
        #[command(flatten)]
        node: NodeAddr,
    },
    /// Streams this node's ranges to the nodes that take them over, then leaves the ring.
    Decommission {
        #[command(flatten)]
        node: NodeAddr,
    },
    /// Anti-entropy repair of the ranges this node replicates (Merkle trees per range).
    Repair {
        keyspace: Option<String>,
        #[command(flatten)]
        node: NodeAddr,
    },
    /// Flushes, then compacts all SSTables of the tables into one (major compaction).
    Compact {
        keyspace: Option<String>,
        tables: Vec<String>,
        #[command(flatten)]
        node: NodeAddr,
    },
}

/// The subset of cassandra.yaml that Sibyl understands.
/// Keys accepted but not (yet) used are kept so that an existing cassandra.yaml still loads.
#[allow(dead_code)]
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct YamlConfig {
    pub cluster_name: Option<String>,
    pub data_file_directories: Option<Vec<PathBuf>>,
    pub data_dir: Option<PathBuf>,
    pub commitlog_directory: Option<PathBuf>,
    pub listen_address: Option<IpAddr>,
    pub rpc_address: Option<IpAddr>,
    pub native_transport_port: Option<u16>,
    pub storage_port: Option<u16>,
    pub num_tokens: Option<u32>,
    pub seed_provider: Option<Vec<SeedProvider>>,
    pub seeds: Option<String>,
    pub dc: Option<String>,
    pub rack: Option<String>,
    pub endpoint_snitch: Option<String>,
    pub commitlog_sync: Option<String>,
    pub commitlog_sync_period: Option<String>,
    pub commitlog_sync_period_in_ms: Option<u64>,
    pub commitlog_sync_group_window: Option<String>,
    pub commitlog_segment_size: Option<String>,
    pub native_transport_max_frame_size: Option<String>,
    pub memtable_heap_space: Option<String>,
    pub compaction_throughput: Option<String>,
    pub file_cache_size: Option<String>,
    pub paxos_cache_size: Option<String>,
    pub auto_snapshot: Option<bool>,
    pub partitioner: Option<String>,
    pub read_request_timeout: Option<String>,
    pub read_request_timeout_in_ms: Option<u64>,
    pub range_request_timeout: Option<String>,
    pub range_request_timeout_in_ms: Option<u64>,
    pub write_request_timeout: Option<String>,
    pub write_request_timeout_in_ms: Option<u64>,
    pub cas_contention_timeout: Option<String>,
    pub cas_contention_timeout_in_ms: Option<u64>,
    pub truncate_request_timeout: Option<String>,
    pub truncate_request_timeout_in_ms: Option<u64>,
    pub hinted_handoff_enabled: Option<bool>,
    pub max_hint_window: Option<String>,
    pub max_hint_window_in_ms: Option<u64>,
}

#[allow(dead_code)]
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SeedProvider {
    pub class_name: Option<String>,
    pub parameters: Option<Vec<SeedParams>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SeedParams {
    pub seeds: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitlogSyncMode {
    Periodic { period_ms: u64 },
    Batch,
    Group { window_ms: u64 },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen_address: IpAddr,
    pub native_port: u16,
    pub storage_port: u16,
    /// Used by gossip once the ring lands.
    #[allow(dead_code)]
    pub seeds: Vec<IpAddr>,
    pub cluster_name: String,
    pub dc: String,
    pub rack: String,
    pub num_tokens: u32,
    pub commitlog_sync: CommitlogSyncMode,
    pub max_frame_size: usize,
    pub memtable_space: Option<u64>,
    pub compaction_throughput_mb: Option<u64>,
    /// Cache of decompressed SSTable blocks (Cassandra's chunk cache, `file_cache_size`).
    pub file_cache_size: Option<u64>,
    /// Memory for Paxos acceptor states; older ones are spilled to the `system.paxos` table.
    pub paxos_cache_size: u64,
    pub auto_snapshot: bool,
    /// Coordinator timeouts, named as in cassandra.yaml.
    pub read_request_timeout: Duration,
    pub range_request_timeout: Duration,
    pub write_request_timeout: Duration,
    pub cas_contention_timeout: Duration,
    pub truncate_request_timeout: Duration,
    pub hinted_handoff_enabled: bool,
    /// Writes for a replica down longer than this are not hinted (it needs a repair).
    pub max_hint_window: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid config file {0}: {1}")]
    Yaml(PathBuf, String),
    #[error("invalid value for {0}: {1}")]
    Value(&'static str, String),
}

impl Config {
    pub fn load(flags: Flags) -> Result<Config, ConfigError> {
        let yaml = match &flags.config {
            Some(path) => read_yaml(path)?,
            None => YamlConfig::default(),
        };
        let seeds_from_yaml = yaml
            .seed_provider
            .iter()
            .flatten()
            .flat_map(|p| p.parameters.iter().flatten())
            .map(|p| p.seeds.clone())
            .chain(yaml.seeds.clone())
            .flat_map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .map(|s| {
                let host = s.split(':').next().unwrap_or(&s).to_string();
                host.parse::<IpAddr>()
                    .map_err(|_| ConfigError::Value("seeds", s.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let commitlog_sync = match yaml.commitlog_sync.as_deref().unwrap_or("periodic") {
            "periodic" => CommitlogSyncMode::Periodic {
                period_ms: match (
                    &yaml.commitlog_sync_period,
                    yaml.commitlog_sync_period_in_ms,
                ) {
                    (Some(s), _) => parse_duration_ms("commitlog_sync_period", s)?,
                    (None, Some(ms)) => ms,
                    (None, None) => 10_000,
                },
            },
            "batch" => CommitlogSyncMode::Batch,
            "group" => CommitlogSyncMode::Group {
                window_ms: match &yaml.commitlog_sync_group_window {
                    Some(s) => parse_duration_ms("commitlog_sync_group_window", s)?,
                    None => 15,
                },
            },
            other => return Err(ConfigError::Value("commitlog_sync", other.to_string())),
        };
        let max_frame_size = match &yaml.native_transport_max_frame_size {
            Some(s) => parse_size_bytes("native_transport_max_frame_size", s)? as usize,
            None => 16 * 1024 * 1024,
        };
        let data_dir = flags
            .data_dir
            .or(yaml.data_dir)
            .or(yaml
                .data_file_directories
                .and_then(|d| d.into_iter().next()))
            .unwrap_or_else(|| PathBuf::from("./data"));
        let listen_address = flags
            .listen_address
            .or(yaml.listen_address)
            .or(yaml.rpc_address)
            .unwrap_or_else(|| "127.0.0.1".parse().unwrap());
        // Cassandra 4+ writes `name: 5000ms`; older files `name_in_ms: 5000`.
        let timeout = |key: &'static str,
                       text: &Option<String>,
                       ms: Option<u64>,
                       default_ms: u64|
         -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(match (text, ms) {
                (Some(t), _) => parse_duration_ms(key, t)?,
                (None, Some(ms)) => ms,
                (None, None) => default_ms,
            }))
        };
        let read_request_timeout = timeout(
            "read_request_timeout",
            &yaml.read_request_timeout,
            yaml.read_request_timeout_in_ms,
            5000,
        )?;
        let range_request_timeout = timeout(
            "range_request_timeout",
            &yaml.range_request_timeout,
            yaml.range_request_timeout_in_ms,
            10_000,
        )?;
        let write_request_timeout = timeout(
            "write_request_timeout",
            &yaml.write_request_timeout,
            yaml.write_request_timeout_in_ms,
            2000,
        )?;
        let cas_contention_timeout = timeout(
            "cas_contention_timeout",
            &yaml.cas_contention_timeout,
            yaml.cas_contention_timeout_in_ms,
            1000,
        )?;
        let truncate_request_timeout = timeout(
            "truncate_request_timeout",
            &yaml.truncate_request_timeout,
            yaml.truncate_request_timeout_in_ms,
            60_000,
        )?;
        let max_hint_window = timeout(
            "max_hint_window",
            &yaml.max_hint_window,
            yaml.max_hint_window_in_ms,
            3 * 3600 * 1000,
        )?;
        Ok(Config {
            hinted_handoff_enabled: yaml.hinted_handoff_enabled.unwrap_or(true),
            max_hint_window,
            read_request_timeout,
            range_request_timeout,
            write_request_timeout,
            cas_contention_timeout,
            truncate_request_timeout,
            data_dir,
            listen_address,
            native_port: flags
                .native_port
                .or(yaml.native_transport_port)
                .unwrap_or(9042),
            storage_port: flags.storage_port.or(yaml.storage_port).unwrap_or(7000),
            seeds: flags.seeds.unwrap_or(seeds_from_yaml),
            cluster_name: flags
                .cluster_name
                .or(yaml.cluster_name)
                .unwrap_or_else(|| "Test Cluster".to_string()),
            dc: flags
                .dc
                .or(yaml.dc)
                .unwrap_or_else(|| "datacenter1".to_string()),
            rack: flags
                .rack
                .or(yaml.rack)
                .unwrap_or_else(|| "rack1".to_string()),
            num_tokens: flags.num_tokens.or(yaml.num_tokens).unwrap_or(16).max(1),
            commitlog_sync,
            max_frame_size,
            memtable_space: yaml
                .memtable_heap_space
                .as_deref()
                .map(|s| parse_size_bytes("memtable_heap_space", s))
                .transpose()?,
            file_cache_size: yaml
                .file_cache_size
                .as_deref()
                .map(|s| parse_size_bytes("file_cache_size", s))
                .transpose()?,
            paxos_cache_size: yaml
                .paxos_cache_size
                .as_deref()
                .map(|s| parse_size_bytes("paxos_cache_size", s))
                .transpose()?
                .unwrap_or(32 << 20),
            compaction_throughput_mb: yaml
                .compaction_throughput
                .as_deref()
                .map(|s| parse_size_bytes("compaction_throughput", s.trim_end_matches("/s")))
                .transpose()?
                .map(|b| b / (1024 * 1024)),
            auto_snapshot: yaml.auto_snapshot.unwrap_or(true),
        })
    }
}

fn read_yaml(path: &Path) -> Result<YamlConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
    if text.trim().is_empty() {
        return Ok(YamlConfig::default());
    }
    serde_saphyr::from_str(&text).map_err(|e| ConfigError::Yaml(path.into(), e.to_string()))
}

/// Cassandra 4+ durations: "10000ms", "10s", "2m", or a bare number of milliseconds.
fn parse_duration_ms(key: &'static str, s: &str) -> Result<u64, ConfigError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ConfigError::Value(key, s.to_string()))?;
    let factor = match unit.trim() {
        "" | "ms" | "milliseconds" => 1,
        "s" | "seconds" => 1000,
        "m" | "minutes" => 60_000,
        "h" | "hours" => 3_600_000,
        _ => return Err(ConfigError::Value(key, s.to_string())),
    };
    Ok(n * factor)
}

/// Cassandra 4+ data sizes: "16MiB", "32MiB", "512KiB", "1GiB", or bytes.
fn parse_size_bytes(key: &'static str, s: &str) -> Result<u64, ConfigError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ConfigError::Value(key, s.to_string()))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "k" => 1024,
        "MiB" | "MB" | "m" => 1024 * 1024,
        "GiB" | "GB" | "g" => 1024 * 1024 * 1024,
        _ => return Err(ConfigError::Value(key, s.to_string())),
    };
    Ok(n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size_bytes("k", "16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_duration_ms("k", "10s").unwrap(), 10_000);
        assert!(parse_duration_ms("k", "10parsecs").is_err());
    }

    #[test]
    fn flags_win_over_yaml() {
        let dir = std::env::temp_dir().join(format!("sibyl-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yaml");
        std::fs::write(&file, "cluster_name: Foo\nnative_transport_port: 9999\n").unwrap();
        let flags = Flags {
            config: Some(file.clone()),
            native_port: Some(1234),
            ..Default::default()
        };
        let c = Config::load(flags).unwrap();
        assert_eq!(c.cluster_name, "Foo");
        assert_eq!(c.native_port, 1234);
        assert_eq!(c.cas_contention_timeout, Duration::from_millis(1000));
        std::fs::write(
            &file,
            "write_request_timeout: 3s\nread_request_timeout_in_ms: 700\n",
        )
        .unwrap();
        let c = Config::load(Flags {
            config: Some(file.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.write_request_timeout, Duration::from_secs(3));
        assert_eq!(c.read_request_timeout, Duration::from_millis(700));
        std::fs::write(&file, "no_such_key: 1\n").unwrap();
        let flags = Flags {
            config: Some(file),
            ..Default::default()
        };
        assert!(Config::load(flags).is_err());
    }
}
