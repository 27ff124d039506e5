//! The `sibyl` binary: a Cassandra-compatible database node. It owns configuration, start-up,
//! the CQL native-protocol server, system tables, schema management and query execution, and
//! wires together the codec, the parser, the type system and the storage engine.

mod admin;
mod alloc;
mod batchlog;
mod cas;
mod config;
mod connection;
mod coordinator;
mod counters;
mod data;
mod ddl;
mod describe;
mod error;
mod executor;
mod hints;
mod indexes;
mod modify;
mod node;
mod outbox;
mod paxos;
mod paxos_store;
mod repair;
mod rows;
mod schema;
mod select;
mod selection;
mod system_tables;
mod values;

#[global_allocator]
static ALLOC: alloc::Allocator = alloc::Allocator;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    alloc::set_purge_delay(10_000);
    alloc::disable_transparent_huge_pages();
    let flags = match config::Flags::try_parse() {
        Ok(f) => f,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    if let Some(cmd) = flags.command.clone() {
        return run_command(cmd);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIBYL_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match config::Config::load(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sibyl: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("fatal: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(config: config::Config) -> node::anyhow_like::Result<()> {
    let started = std::time::Instant::now();
    let addr = SocketAddr::new(config.listen_address, config.native_port);
    let node = tokio::task::block_in_place(|| node::Node::open(config))?;
    coordinator::start(node.clone()).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(
        "Starting listening for CQL clients on {addr} (started in {} ms)",
        started.elapsed().as_millis()
    );
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(connection::handle(node.clone(), stream));
                    }
                    Err(e) => tracing::warn!("accept failed: {e}"),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: flushing memtables");
    drop(listener);
    let n = node.clone();
    tokio::task::spawn_blocking(move || n.shutdown()).await?;
    tracing::info!("shutdown complete");
    Ok(())
}

fn run_command(cmd: config::Command) -> ExitCode {
    use admin::AdminRequest as R;
    use config::Command as C;
    let (node, req) = match cmd {
        C::Status { keyspace, node } => (node, R::Status { keyspace }),
        C::Ring { node } => (node, R::Ring),
        C::Describering { keyspace, node } => (node, R::DescribeRing { keyspace }),
        C::Flush {
            keyspace,
            tables,
            node,
        } => (node, R::Flush { keyspace, tables }),
        C::Compact {
            keyspace,
            tables,
            node,
        } => (node, R::Compact { keyspace, tables }),
        C::Repair { keyspace, node } => (node, R::Repair { keyspace }),
        C::Decommission { node } => (node, R::Decommission),
        C::Removenode { host_id, node } => (node, R::RemoveNode { host_id }),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let to = SocketAddr::new(node.host, node.port);
    ExitCode::from(runtime.block_on(admin::run_cli(to, req)))
}
