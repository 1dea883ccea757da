//! A minimal SMTP server that accepts every message and keeps it, and the decoding needed to
//! read a reset token out of a MIME message (7bit, quoted-printable or base64).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as delivered: envelope and raw DATA (dot-unstuffed).
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Debug, Default)]
struct Mailbox {
    mails: Vec<Mail>,
}

/// The sink: listens on `127.0.0.1:<random port>` for as long as the test runtime lives.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    port: u16,
    mailbox: Arc<Mutex<Mailbox>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP sink");
        let port = listener.local_addr().expect("sink address").port();
        let mailbox = Arc::new(Mutex::new(Mailbox::default()));
        let shared = mailbox.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mailbox = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, mailbox).await;
                });
            }
        });
        Self { port, mailbox }
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Mail> {
        self.mailbox.lock().expect("mailbox").mails.clone()
    }

    /// The first message to `recipient` whose `Subject:` line contains `subject` (accounts get
    /// more than one kind of mail: the verification mail comes first), waiting up to `timeout`.
    pub async fn wait_for_mail_about(
        &self,
        recipient: &str,
        subject: &str,
        timeout: Duration,
    ) -> Option<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.messages().into_iter().find(|m| {
                m.to.iter().any(|to| to.eq_ignore_ascii_case(recipient))
                    && m.data
                        .lines()
                        .any(|l| l.starts_with("Subject:") && l.contains(subject))
            });
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The subject of the password-reset mail.
pub const RESET_SUBJECT: &str = "Reset your password";

/// The address inside `MAIL FROM:<…>` / `RCPT TO:<…>` (parameters after it dropped).
fn path_of(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(open), Some(close)) if open < close => arg[open + 1..close].to_owned(),
        _ => arg.split_whitespace().next().unwrap_or_default().to_owned(),
    }
}

async fn serve(stream: TcpStream, mailbox: Arc<Mutex<Mailbox>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let upper = text.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n"
        } else if upper.starts_with("HELO") {
            b"250 sink.test\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = path_of(&text["MAIL FROM:".len()..]);
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(path_of(&text["RCPT TO:".len()..]));
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line).await? == 0 {
                    return Ok(());
                }
                let chunk = String::from_utf8_lossy(&line).into_owned();
                if chunk.trim_end_matches(['\r', '\n']) == "." {
                    break;
                }
                // Dot-unstuffing (RFC 5321 §4.5.2).
                data.push_str(chunk.strip_prefix('.').unwrap_or(&chunk));
            }
            mailbox.lock().expect("mailbox").mails.push(Mail {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
            });
            b"250 OK queued\r\n"
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper.starts_with("VRFY") {
            b"252 Cannot verify\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 Command not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// Decodes quoted-printable text (soft line breaks and `=XX` escapes).
pub fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 3 <= bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every base64 body in the message (runs of base64-only lines after a blank line), decoded.
fn base64_bodies(raw: &str) -> Vec<String> {
    let lines: Vec<&str> = raw.lines().map(|l| l.trim_end_matches('\r')).collect();
    let is_b64 = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    };
    let mut bodies = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.is_empty() {
            continue;
        }
        let run: String = lines[i + 1..]
            .iter()
            .take_while(|l| is_b64(l))
            .copied()
            .collect();
        if run.len() >= 16
            && let Ok(bytes) = STANDARD.decode(run.as_bytes())
            && let Ok(text) = String::from_utf8(bytes)
        {
            bodies.push(text);
        }
    }
    bodies
}

/// The message text under every plausible transfer encoding.
pub fn decoded_texts(raw: &str) -> Vec<String> {
    let mut texts = vec![raw.to_owned(), decode_quoted_printable(raw)];
    texts.extend(base64_bodies(raw));
    texts
}

fn token_after(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let token: String = text[start..]
        .trim_start_matches(' ')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    (!token.is_empty()).then_some(token)
}

/// The longest token after `marker` in any decoding of `raw`: an undecoded soft line break
/// cuts a token short, it never lengthens one.
pub fn longest_token_after(raw: &str, marker: &str) -> Option<String> {
    decoded_texts(raw)
        .iter()
        .filter_map(|t| token_after(t, marker))
        .max_by_key(String::len)
}

/// The token on the `Reset token: <token>` line of a reset mail.
pub fn reset_token_line(raw: &str) -> Option<String> {
    longest_token_after(raw, "Reset token:")
}

/// The token at the end of the `<PUBLIC_URL>/auth/password/reset/<token>` link of a reset mail.
pub fn reset_token_link(raw: &str, public_url: &str) -> Option<String> {
    longest_token_after(raw, &format!("{public_url}/auth/password/reset/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_soft_breaks_and_escapes_are_decoded() {
        let raw = "Reset token: abc=\r\ndef=3Dx\r\n";
        assert_eq!(decode_quoted_printable(raw), "Reset token: abcdef=x\r\n");
        assert_eq!(reset_token_line(raw).as_deref(), Some("abcdef"));
    }

    #[test]
    fn base64_bodies_are_searched() {
        let body = STANDARD.encode("Hello\r\nReset token: Zm9v-_bar\r\n");
        let raw = format!("Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n");
        assert_eq!(reset_token_line(&raw).as_deref(), Some("Zm9v-_bar"));
    }
}
