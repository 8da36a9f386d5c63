//! The suite's own Redis and Postgres, on free loopback ports, in a private directory: they
//! can be killed and restarted without touching the machine's shared services.
//!
//! Redis keeps an append-only file (`appendfsync everysec`, as production should), so a
//! `kill -9` loses at most the last second of writes. Postgres is a cluster of its own
//! (`initdb`; run as the `postgres` user when the suite runs as root, since Postgres refuses
//! root), restarted with `pg_ctl restart -m immediate` (a crash restart: WAL recovery).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A free TCP port on loopback (bound, then released for the service to take).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn wait_port(port: u16, within: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on port {port} after {within:?}")
}

/// `redis-server` on loopback `port` with its files in `dir` and the settings the engine
/// relies on: an append-only file synced every second, no snapshots, no eviction.
fn redis_server(port: u16, dir: &Path) -> Command {
    let mut c = Command::new("redis-server");
    c.args(["--bind", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--dir")
        .arg(dir)
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
        ]);
    c
}

/// A private `redis-server` with an append-only file.
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    pub fn start(root: &Path) -> anyhow::Result<Redis> {
        let dir = root.join("redis");
        std::fs::create_dir_all(&dir)?;
        let mut r = Redis {
            port: free_port()?,
            dir,
            child: None,
        };
        r.spawn()?;
        Ok(r)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))?;
        let child = redis_server(self.port, &self.dir)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting redis-server (apt-get install redis-server)")?;
        self.child = Some(child);
        wait_port(self.port, Duration::from_secs(10))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `kill -9`, then a restart on the same port from the append-only file after `down`.
    pub fn crash_and_restart(&mut self, down: Duration) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().context("kill -9 redis")?;
            let _ = c.wait();
        }
        std::thread::sleep(down);
        self.spawn()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A private Postgres cluster.
pub struct Postgres {
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

fn postgres_bin() -> anyhow::Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no Postgres server binaries (apt-get install postgresql)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .context("no initdb under /usr/lib/postgresql/*/bin")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    pub fn start(root: &Path) -> anyhow::Result<Postgres> {
        let dir = root.join("postgres");
        std::fs::create_dir_all(&dir)?;
        let pg = Postgres {
            port: free_port()?,
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            bin: postgres_bin()?,
            as_postgres: running_as_root(),
        };
        if pg.as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()?;
            if !ok.success() {
                bail!("chown of {} to postgres failed", dir.display());
            }
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        )?;
        pg.ctl(&["start", "-w", "-t", "60"])?;
        Ok(pg)
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        // Socket in the data directory (not /var/run), loopback only; fsync off: the faults
        // are process crashes, not machine crashes, so the page cache survives them.
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.data.display()
        );
        let mut all = vec!["-D", self.data.to_str().unwrap_or_default(), "-l"];
        let log = self.log.to_string_lossy().into_owned();
        all.push(&log);
        all.extend_from_slice(&["-o", &opts]);
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A crash restart: every backend killed at once, then WAL recovery.
    pub fn restart_immediate(&self) -> anyhow::Result<()> {
        self.ctl(&["restart", "-m", "immediate", "-w", "-t", "60"])
    }

    /// How many times the server log says `deadlock detected`.
    pub fn deadlocks(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|s| s.matches("deadlock detected").count())
            .unwrap_or(0)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop", "-m", "immediate", "-w"]);
    }
}

/// A private Redis Cluster on loopback: 3 primaries and 3 replicas (append-only files,
/// `cluster-node-timeout` 2 s, so a killed primary's replica takes over within seconds).
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<(u16, Option<Child>)>,
}

/// A free port whose cluster bus port (+10000) is free too.
fn cluster_port() -> anyhow::Result<u16> {
    for _ in 0..200 {
        let p = free_port()?;
        if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return Ok(p);
        }
    }
    bail!("no free port pair for a cluster node")
}

impl RedisCluster {
    pub fn start(root: &Path) -> anyhow::Result<RedisCluster> {
        let dir = root.join("redis-cluster");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = cluster_port()?;
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir)?;
            let log = std::fs::File::create(node_dir.join("redis.log"))?;
            let child = redis_server(port, &node_dir)
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .spawn()
                .context("starting a cluster node (apt-get install redis-server)")?;
            wait_port(port, Duration::from_secs(10))?;
            nodes.push((port, Some(child)));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .context("redis-cli --cluster create")?;
        if !out.status.success() {
            bail!(
                "creating the cluster: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let c = RedisCluster { dir, nodes };
        c.wait_ok(Duration::from_secs(30))?;
        Ok(c)
    }

    /// The seed URLs (every node).
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    fn cli(port: u16, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The ports of the nodes not killed.
    fn live(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// Waits until every live node says `cluster_state:ok` and every live node sees the same
    /// three live primaries.
    pub fn wait_ok(&self, within: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < within {
            let live = self.live();
            let ok = live
                .iter()
                .all(|p| Self::cli(*p, &["cluster", "info"]).contains("cluster_state:ok"));
            if ok && live.iter().all(|p| Self::primaries_seen(*p).len() == 3) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the cluster is not ok after {within:?}")
    }

    /// Waits until the live nodes no longer count the primary on `killed` (their failure
    /// detection) and a replica serves its slots (three live primaries, state ok).
    pub fn wait_failover(&self, killed: u16, within: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < within {
            let live = self.live();
            let promoted = live.iter().all(|p| {
                let seen = Self::primaries_seen(*p);
                seen.len() == 3 && !seen.contains(&killed)
            });
            if promoted
                && live
                    .iter()
                    .all(|p| Self::cli(*p, &["cluster", "info"]).contains("cluster_state:ok"))
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("no replica took over from port {killed} within {within:?}")
    }

    /// The live primaries a node knows, by port.
    fn primaries_seen(port: u16) -> Vec<u16> {
        Self::cli(port, &["cluster", "nodes"])
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| {
                let addr = l.split_whitespace().nth(1)?;
                addr.split(['@', ':']).nth(1)?.parse().ok()
            })
            .collect()
    }

    /// `kill -9` of the primary that serves `key`'s slot; its replica takes over (the cluster
    /// is ok again, returned after). Returns the killed node's port.
    pub fn kill_primary_of(&mut self, key: &str) -> anyhow::Result<u16> {
        let live = self
            .nodes
            .iter()
            .find(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
            .context("no live node")?;
        let slot: u16 = Self::cli(live, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .context("keyslot")?;
        let nodes = Self::cli(live, &["cluster", "nodes"]);
        let port = nodes
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .find(|l| {
                l.split_whitespace().skip(8).any(|range| {
                    let mut it = range.split('-');
                    match (it.next().and_then(|a| a.parse::<u16>().ok()), it.next()) {
                        (Some(a), Some(b)) => {
                            b.parse::<u16>().is_ok_and(|b| a <= slot && slot <= b)
                        }
                        (Some(a), None) => a == slot,
                        _ => false,
                    }
                })
            })
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|a| a.split(['@', ':']).nth(1))
            .and_then(|p| p.parse::<u16>().ok())
            .context("the primary of the key's slot")?;
        let node = self
            .nodes
            .iter_mut()
            .find(|(p, _)| *p == port)
            .context("the primary is not one of ours")?;
        if let Some(mut c) = node.1.take() {
            c.kill().context("kill -9 a primary")?;
            let _ = c.wait();
        }
        Ok(port)
    }

    /// The directory of the nodes' data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.nodes {
            if let Some(mut c) = c.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
