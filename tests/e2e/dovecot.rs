//! A private Dovecot for the tests and benches (`#[path]`-included by
//! `benches/mail.rs`): IMAP and LMTP on 127.0.0.1, users `support`, `sales` and
//! `ada`, mail as Maildirs under its own directory, run as the `mail` user.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::Duration;

/// Waits up to 20 s for `f`, checking every 20 ms.
fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A private Dovecot: users `support` and `ada`, IMAP on `imap`, LMTP on `lmtp`,
/// mail as Maildirs under its directory.
pub struct Dovecot {
    pub dir: tempfile::TempDir,
    child: Child,
    pub imap: u16,
    pub lmtp: u16,
}

impl Dovecot {
    pub fn start(imap: u16, lmtp: u16) -> Dovecot {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("mail")).unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::write(
            dir.path().join("users"),
            "support:{PLAIN}support-pw::::::\nsales:{PLAIN}sales-pw::::::\nada:{PLAIN}ada-pw::::::\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("dovecot.conf"),
            format!(
                r#"base_dir = {d}/run
listen = 127.0.0.1
protocols = imap lmtp
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {d}/dovecot.log
mail_location = maildir:{d}/mail/%u
mail_uid = mail
mail_gid = mail
first_valid_uid = 8
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {d}/users
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={d}/mail/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
"#
            ),
        )
        .unwrap();
        let ok = Command::new("chmod")
            .args(["755", &d])
            .status()
            .unwrap()
            .success()
            && Command::new("chown")
                .args(["-R", "mail:mail", &format!("{d}/mail")])
                .status()
                .unwrap()
                .success();
        assert!(ok, "chmod/chown of the Dovecot directory");
        let child = Command::new("/usr/sbin/dovecot")
            .args(["-F", "-c", &format!("{d}/dovecot.conf")])
            .spawn()
            .expect(
                "Dovecot (Debian's dovecot-imapd and dovecot-lmtpd; scripts/test.sh installs them)",
            );
        let dv = Dovecot {
            dir,
            child,
            imap,
            lmtp,
        };
        dv.wait_up();
        dv
    }

    fn wait_up(&self) {
        until("Dovecot's IMAP and LMTP ports", || {
            TcpStream::connect(("127.0.0.1", self.imap)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.lmtp)).is_ok()
        });
    }

    /// Stops the server as its operator would (`dovecot stop`: the master and every
    /// IMAP process it started).
    pub fn stop(&mut self) {
        let d = self.dir.path().display().to_string();
        let stopped = Command::new("/usr/sbin/dovecot")
            .args(["-c", &format!("{d}/dovecot.conf"), "stop"])
            .status()
            .unwrap();
        assert!(stopped.success(), "dovecot stop");
        let _ = self.child.wait();
        // Its children (imap, lmtp, auth) go with the master; wait for the port.
        until("Dovecot stopped", || {
            TcpStream::connect(("127.0.0.1", self.imap)).is_err()
        });
    }

    pub fn restart(&mut self) {
        let d = self.dir.path().display().to_string();
        self.child = Command::new("/usr/sbin/dovecot")
            .args(["-F", "-c", &format!("{d}/dovecot.conf")])
            .spawn()
            .unwrap();
        self.wait_up();
    }

    /// Delivers `raw` to `user` through LMTP (RFC 2033), as a mail server would.
    pub fn deliver(&self, user: &str, raw: &str) {
        let s = TcpStream::connect(("127.0.0.1", self.lmtp)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let mut expect = |code: &str| loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.starts_with(code), "LMTP: wanted {code}, got {line:?}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        };
        expect("220");
        for (cmd, code) in [
            ("LHLO test".to_string(), "250"),
            ("MAIL FROM:<sender@example.com>".into(), "250"),
            (format!("RCPT TO:<{user}>"), "250"),
            ("DATA".into(), "354"),
        ] {
            write!(w, "{cmd}\r\n").unwrap();
            expect(code);
        }
        let body = raw.replace("\r\n", "\n").replace('\n', "\r\n");
        let body = body
            .split("\r\n")
            .map(|l| {
                if l.starts_with('.') {
                    format!(".{l}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n");
        write!(w, "{body}\r\n.\r\n").unwrap();
        expect("250");
        write!(w, "QUIT\r\n").unwrap();
    }

    /// The messages in `user`'s inbox (new and seen), oldest first.
    pub fn inbox(&self, user: &str) -> Vec<String> {
        let mut files: Vec<_> = ["new", "cur"]
            .iter()
            .flat_map(|sub| {
                std::fs::read_dir(self.dir.path().join("mail").join(user).join(sub))
                    .into_iter()
                    .flatten()
            })
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
            .collect()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
