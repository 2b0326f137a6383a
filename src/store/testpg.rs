//! A real PostgreSQL server for tests, started once per test process from the local
//! installation (`initdb` on the PATH or Debian's `/usr/lib/postgresql/<v>/bin`;
//! `scripts/test.sh` installs it when missing). Each test gets a database of its own.
//! The server runs as `nobody` when the tests run as root (PostgreSQL refuses root), in
//! a directory under the temp dir, and goes when the test process goes (parent-death
//! signal); directories of earlier runs are removed at start.
//!
//! Shared by the store's unit tests and the end-to-end tests (`#[path]`), so it uses
//! only std, libc and the PostgreSQL programs.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub struct PgServer {
    pub port: u16,
    pub bin: PathBuf,
    pub dir: PathBuf,
}

/// The server of this test process (started on first use). Panics with the reason when
/// PostgreSQL is missing or does not start: a missing peer fails loudly.
pub fn server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| start().unwrap_or_else(|e| panic!("PostgreSQL for tests: {e}")))
}

/// A new, empty database on the test server; its URL.
pub fn fresh_database() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let s = server();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let out = Command::new(s.bin.join("createdb"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &s.port.to_string(),
            "-U",
            "postgres",
            &name,
        ])
        .output()
        .expect("running createdb");
    assert!(
        out.status.success(),
        "createdb {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("postgres://postgres@127.0.0.1:{}/{name}", s.port)
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").is_file() && d.join("postgres").is_file() {
                // Debian's /usr/bin/initdb may be a wrapper; use the real directory.
                let real = std::fs::canonicalize(d.join("postgres")).map_err(|e| e.to_string())?;
                return Ok(real.parent().unwrap_or(&d).to_path_buf());
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|r| r.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|d| d.join("initdb").is_file());
    found.sort();
    found.pop().ok_or_else(|| {
        "initdb not found on the PATH nor in /usr/lib/postgresql/*/bin: install PostgreSQL \
         (scripts/test.sh installs Debian's `postgresql`)"
            .to_string()
    })
}

/// The user the server runs as: ourselves, or `nobody` when we are root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: plain libc calls without pointers kept.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"nobody".as_ptr());
        if pw.is_null() {
            return Some((65534, 65534));
        }
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// (std drops supplementary groups itself when root changes uid.)
fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
}

fn remove_stale(tmp: &Path) {
    let Ok(rd) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = name.strip_prefix("omnigate-pg-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn start() -> Result<PgServer, String> {
    let bin = bin_dir()?;
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let dir = tmp.join(format!("omnigate-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let user = run_as();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let mut init = Command::new(bin.join("initdb"));
    init.args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
        "-D",
    ])
    .arg(&data)
    .current_dir(&dir);
    as_user(&mut init, user);
    let out = init.output().map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let log = std::fs::File::create(dir.join("postgres.log")).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    as_user(&mut cmd, user);
    // SAFETY: prctl between fork and exec, after the uid change (which would clear it).
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
            Ok(())
        });
    }
    // The parent-death signal follows the thread that forked: fork from one that lives
    // as long as the process.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("test-postgres".into())
        .spawn(move || {
            let r = cmd.spawn().map(|c| c.id()).map_err(|e| e.to_string());
            let _ = tx.send(r);
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())??;
    let server = PgServer { port, bin, dir };
    // Ready when it answers.
    let mut last = String::new();
    for _ in 0..300 {
        let out = Command::new(server.bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .output()
            .map_err(|e| format!("pg_isready: {e}"))?;
        if out.status.success() {
            return Ok(server);
        }
        last = String::from_utf8_lossy(&out.stdout).to_string();
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(server.dir.join("postgres.log")).unwrap_or_default();
    Err(format!("did not start in 30 s ({last}); log:\n{log}"))
}
