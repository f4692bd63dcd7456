//! `fjord server [config/server.properties] [--override key=value ...]`.

use anyhow::{bail, Context, Result};
use broker::config::{parse_properties, BrokerConfig};
use broker::server::network_threads::NetworkThreads;
use broker::server::Broker;
use broker::time::Time;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// A Kafka-style server.properties file; without it, zero config: 127.0.0.1:9092, ./data.
    pub config: Option<PathBuf>,
    /// Overrides a key of the file, as kafka-server-start.sh's --override.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// Reads the file and overrides into one validated config. Touches nothing on disk.
pub fn load_config(args: &ServerArgs) -> Result<BrokerConfig> {
    let mut props = BTreeMap::new();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        props = parse_properties(&text).with_context(|| format!("in {}", path.display()))?;
    }
    for o in &args.overrides {
        let Some((k, v)) = o.split_once('=') else {
            bail!("--override expects KEY=VALUE, got '{o}'");
        };
        props.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(BrokerConfig::from_properties(&props)?)
}

pub fn run(args: ServerArgs) -> Result<()> {
    let config = load_config(&args)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let open_files = broker::server::raise_open_file_limit();
    tracing::info!(open_files_max = ?open_files, "open-file limit");
    // The acceptor and the background tasks; connections are served on the network
    // threads (`broker::server::network_threads`).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        // Handlers first: a SIGTERM that arrives once the port is announced must mean
        // a clean shutdown, never the default kill.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let broker = Broker::open(config, Time::System)?;
        // Running before the port is announced: the line below means ready.
        let network = NetworkThreads::start(broker.config.num_network_threads)?;
        let listeners = broker.bind().await?;
        for name in &broker.config.listeners.controller_listener_names {
            tracing::info!(listener = %name, "controller listener not bound: Fjord's metadata quorum does not use Kafka's controller protocol");
        }
        for l in &listeners {
            tracing::info!(listener = %l.name, addr = %l.local_addr, node_id = broker.node_id(), cluster_id = %broker.cluster_id, "Fjord broker started");
        }
        // Tests and scripts wait for these lines to learn the bound ports: one per
        // listener, in the order configured.
        for l in &listeners {
            println!("fjord: listening on {}", l.local_addr);
        }
        let mut serve = {
            let broker = broker.clone();
            tokio::spawn(async move { broker.serve(listeners, network).await })
        };
        // `serve` ends by itself only when the broker shuts itself down (its log dirs
        // failed: `Broker::fatal_error`).
        let served = tokio::select! {
            _ = term.recv() => false,
            _ = int.recv() => false,
            _ = &mut serve => true,
        };
        tracing::info!("shutting down");
        broker.begin_shutdown();
        if !served {
            let _ = serve.await;
        }
        let closed = broker.shutdown_logs();
        if let Some(why) = broker.fatal_error() {
            anyhow::bail!("the broker stopped: {why}");
        }
        closed?;
        let (direct, stepped_aside) = broker::log::device_flush::append_counts();
        tracing::info!(
            appends_direct = direct,
            appends_during_device_flushes = stepped_aside,
            "shut down cleanly"
        );
        Ok(())
    })
}
