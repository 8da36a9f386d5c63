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
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ])
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
