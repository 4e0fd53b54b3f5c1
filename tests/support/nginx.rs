//! A throwaway nginx for one test: its own prefix directory, config, logs and
//! free port on 127.0.0.1, stopped when dropped.
//!
//! The default server answers:
//!
//! | request         | response                                                 |
//! |-----------------|----------------------------------------------------------|
//! | `GET /`         | 200, `hello\n`, with Content-Length                      |
//! | `GET /chunked`  | 200, [`CHUNKED_BODY`] in several chunks, no Content-Length |
//! | `GET /file`     | 200, [`file_body`] ([`FILE_LEN`] bytes), with Content-Length |
//! | `GET /empty`    | 204, no body                                             |
//! | `GET /notmod`   | 304, no body                                             |
//! | anything else   | a static file under `prefix()/html`, or 404              |
//!
//! plus whatever [`NginxConfig::extra_locations`] adds. Every request is
//! logged to `access.log` as `METHOD URI STATUS`, unbuffered.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The decoded body of `GET /chunked`.
///
/// nginx sends it as three chunks: the SSI page around an included
/// subrequest to `/`.
pub const CHUNKED_BODY: &str = "first\nhello\nthird\n";

/// The length of the body of `GET /file`.
pub const FILE_LEN: usize = 10_000;

/// The body of `GET /file`: the alphabet, repeated, [`FILE_LEN`] bytes.
pub fn file_body() -> Vec<u8> {
    (0..FILE_LEN).map(|i| b'a' + (i % 26) as u8).collect()
}

/// How many ports to try when nginx finds its port taken.
const BIND_ATTEMPTS: usize = 5;
/// How long nginx may take to start listening. A failed bind alone takes
/// about 2.5 s: nginx retries it five times, 500 ms apart.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What the test needs to differ from the default server.
#[derive(Debug, Clone)]
pub struct NginxConfig {
    /// Requests on one connection before nginx closes it (nginx's default
    /// is 1000).
    pub keepalive_requests: u32,
    /// nginx worker processes.
    pub worker_processes: u32,
    /// Raw nginx `location` blocks, appended inside the server block.
    pub extra_locations: String,
}

impl Default for NginxConfig {
    fn default() -> Self {
        NginxConfig {
            keepalive_requests: 1000,
            worker_processes: 1,
            extra_locations: String::new(),
        }
    }
}

/// A running nginx; dropping it stops nginx and deletes its files.
pub struct Nginx {
    binary: PathBuf,
    child: Child,
    addr: SocketAddr,
    // Dropped after `Drop::drop` has stopped nginx, so nginx never sees its
    // files disappear.
    prefix: TempDir,
}

impl Nginx {
    /// Starts nginx on a free port and waits until it accepts connections.
    ///
    /// Panics if nginx is not installed, or does not start.
    pub fn start(cfg: NginxConfig) -> Nginx {
        let binary = find_nginx().unwrap_or_else(|| {
            panic!(
                "nginx is not installed (looked in PATH, /usr/sbin, /usr/local/sbin): \
                 run scripts/install-deps.sh"
            )
        });
        let prefix = tempfile::Builder::new()
            .prefix("blast-nginx-")
            .tempdir()
            .expect("create a temp dir for nginx");
        write_site(prefix.path());

        let mut failures = Vec::new();
        for _ in 0..BIND_ATTEMPTS {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            let config = render_config(&cfg, prefix.path(), addr, running_as_root());
            fs::write(conf_path(prefix.path()), config).expect("write nginx.conf");
            // Logs of an earlier attempt would hide why this one failed.
            for stale in ["error.log", "stderr.log", "nginx.pid"] {
                let _ = fs::remove_file(prefix.path().join(stale));
            }
            let stderr = fs::File::create(prefix.path().join("stderr.log"))
                .expect("create nginx's stderr.log");
            let mut child = nginx_command(&binary, prefix.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
            match wait_until_listening(&mut child, prefix.path(), addr) {
                Startup::Listening => {
                    return Nginx {
                        binary,
                        child,
                        addr,
                        prefix,
                    };
                }
                Startup::Exited(logs) if logs.contains("Address already in use") => {
                    failures.push(logs);
                }
                Startup::Exited(logs) => panic!("nginx failed to start:\n{logs}"),
                Startup::TimedOut => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "nginx did not listen on {addr} within {START_TIMEOUT:?}:\n{}",
                        read_logs(prefix.path())
                    );
                }
            }
        }
        panic!(
            "nginx found its port taken {BIND_ATTEMPTS} times:\n{}",
            failures.join("\n")
        );
    }

    /// The address nginx listens on: 127.0.0.1 and a port of its own.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// nginx's prefix directory. Files written to `prefix()/html` are
    /// served at once.
    pub fn prefix(&self) -> &Path {
        self.prefix.path()
    }

    /// The number of requests nginx has logged so far.
    ///
    /// nginx logs a request just after sending its response, so a client
    /// that has just read a response can be a moment ahead of the log: use
    /// [`Nginx::wait_for_access_log_lines`] to wait for it.
    pub fn access_log_lines(&self) -> usize {
        self.access_log().lines().count()
    }

    /// Waits until the access log has at least `lines` lines, or `timeout`
    /// passes; returns the number of lines then.
    pub fn wait_for_access_log_lines(&self, lines: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let logged = self.access_log_lines();
            if logged >= lines || Instant::now() >= deadline {
                return logged;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The access log so far: one `METHOD URI STATUS` line per request.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.prefix.path().join("access.log")).unwrap_or_default()
    }

    /// Sends a signal through nginx's own `-s` (it reads the pid file).
    fn signal(&self, signal: &str) {
        let _ = nginx_command(&self.binary, self.prefix.path())
            .args(["-s", signal])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn wait_for_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) if Instant::now() >= deadline => return false,
                Ok(None) => thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if self.wait_for_exit(Duration::ZERO) {
            return;
        }
        // Graceful first; a request still in flight (a test that gave up
        // mid-response) can hold that up, so then fast, then SIGKILL.
        self.signal("quit");
        if self.wait_for_exit(Duration::from_secs(3)) {
            return;
        }
        self.signal("stop");
        if self.wait_for_exit(Duration::from_secs(2)) {
            return;
        }
        // Workers outlive a SIGKILLed master: kill them first.
        for worker in children_of(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &worker.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Startup {
    Listening,
    Exited(String),
    TimedOut,
}

/// nginx writes its pid file only after it has bound its listening socket,
/// so a pid file naming our child means the port is ours; a connection alone
/// could reach whoever else took the port.
fn wait_until_listening(child: &mut Child, prefix: &Path, addr: SocketAddr) -> Startup {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Startup::Exited(format!("{status}\n{}", read_logs(prefix)));
        }
        let pid = fs::read_to_string(prefix.join("nginx.pid")).unwrap_or_default();
        if pid.trim() == child.id().to_string()
            && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        {
            return Startup::Listening;
        }
        thread::sleep(Duration::from_millis(10));
    }
    Startup::TimedOut
}

fn nginx_command(binary: &Path, prefix: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(conf_path(prefix))
        .arg("-e")
        .arg(prefix.join("error.log"));
    command
}

fn conf_path(prefix: &Path) -> PathBuf {
    prefix.join("nginx.conf")
}

fn read_logs(prefix: &Path) -> String {
    let mut logs = String::new();
    for name in ["error.log", "stderr.log"] {
        if let Ok(mut file) = fs::File::open(prefix.join(name)) {
            let _ = file.read_to_string(&mut logs);
        }
    }
    logs
}

fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// A port that was free a moment ago. Another process may take it before
/// nginx binds it; `Nginx::start` then tries another.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

/// Whether the effective uid is 0, read from /proc so as to need neither
/// libc nor a child process.
fn running_as_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// Pids whose parent is `pid`, from /proc/*/stat.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let child: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // The command name, in parentheses, may hold spaces: the parent
            // pid is the second field after its closing parenthesis.
            let after_name = &stat[stat.rfind(')')? + 1..];
            let parent: u32 = after_name.split_whitespace().nth(1)?.parse().ok()?;
            (parent == pid).then_some(child)
        })
        .collect()
}

fn write_site(prefix: &Path) {
    let html = prefix.join("html");
    fs::create_dir(&html).expect("create nginx's html dir");
    // SSI makes nginx drop the file's Content-Length, so HTTP/1.1 gets
    // chunked framing; the included subrequest puts its output in a chunk of
    // its own.
    fs::write(
        html.join("chunked.html"),
        "first\n<!--# include virtual=\"/\" -->third\n",
    )
    .expect("write chunked.html");
    fs::write(html.join("file.bin"), file_body()).expect("write file.bin");
}

fn render_config(cfg: &NginxConfig, prefix: &Path, addr: SocketAddr, root: bool) -> String {
    let p = prefix.display();
    // Without it, a root master runs its workers as `nobody`, who cannot
    // read the 0700 temp dir. Non-root nginx ignores `user` with a warning.
    let user = if root { "user root;" } else { "" };
    let NginxConfig {
        keepalive_requests,
        worker_processes,
        extra_locations,
    } = cfg;
    format!(
        r#"# Written by blast's integration tests for one test; deleted with it.
daemon off;
master_process on;
worker_processes {worker_processes};
{user}
error_log "{p}/error.log";
pid "{p}/nginx.pid";
lock_file "{p}/nginx.lock";

events {{
    worker_connections 4096;
}}

http {{
    default_type text/plain;
    log_format blast '$request_method $uri $status';
    access_log "{p}/access.log" blast;
    client_body_temp_path "{p}/client_body_temp";
    proxy_temp_path "{p}/proxy_temp";
    fastcgi_temp_path "{p}/fastcgi_temp";
    uwsgi_temp_path "{p}/uwsgi_temp";
    scgi_temp_path "{p}/scgi_temp";
    keepalive_requests {keepalive_requests};

    server {{
        listen {addr};
        root "{p}/html";

        location = / {{
            return 200 "hello\n";
        }}
        location = /chunked {{
            ssi on;
            ssi_types *;
            alias "{p}/html/chunked.html";
        }}
        location = /file {{
            default_type application/octet-stream;
            alias "{p}/html/file.bin";
        }}
        location = /empty {{
            return 204;
        }}
        location = /notmod {{
            return 304;
        }}

{extra_locations}
    }}
}}
"#
    )
}
