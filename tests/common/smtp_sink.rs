//! A minimal SMTP server on 127.0.0.1 that keeps every message it accepts
//! (for report delivery tests), or answers a chosen code to DATA.

use std::sync::{Arc, Mutex};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Received {
    pub mail_from: String,
    pub rcpt: Vec<String>,
    pub data: String,
}

/// The sink; `reply_to_data` is what DATA's end gets (250 by default).
#[derive(Clone)]
pub struct Sink {
    pub addr: std::net::SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub reply_to_data: Arc<Mutex<String>>,
}

impl Sink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Sink {
            addr: listener.local_addr().unwrap(),
            received: Arc::default(),
            reply_to_data: Arc::new(Mutex::new("250 2.0.0 queued".into())),
        };
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut r = BufReader::new(r);
                    let _ = w.write_all(b"220 sink.test ESMTP\r\n").await;
                    let mut cur = Received {
                        mail_from: String::new(),
                        rcpt: Vec::new(),
                        data: String::new(),
                    };
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let upper = line.to_ascii_uppercase();
                        let reply: String =
                            if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                                "250-sink.test\r\n250 8BITMIME".into()
                            } else if upper.starts_with("MAIL FROM:") {
                                cur.mail_from = line[10..].trim().trim_matches(['<', '>']).into();
                                "250 ok".into()
                            } else if upper.starts_with("RCPT TO:") {
                                cur.rcpt
                                    .push(line[8..].trim().trim_matches(['<', '>']).into());
                                "250 ok".into()
                            } else if upper.starts_with("DATA") {
                                let _ = w.write_all(b"354 go ahead\r\n").await;
                                let mut data = String::new();
                                loop {
                                    line.clear();
                                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                        return;
                                    }
                                    if line == ".\r\n" {
                                        break;
                                    }
                                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                                }
                                let reply = s.reply_to_data.lock().unwrap().clone();
                                if reply.starts_with('2') {
                                    cur.data = data;
                                    s.received.lock().unwrap().push(cur.clone());
                                }
                                cur.rcpt.clear();
                                reply
                            } else if upper.starts_with("QUIT") {
                                let _ = w.write_all(b"221 bye\r\n").await;
                                return;
                            } else {
                                "250 ok".into()
                            };
                        let _ = w.write_all(format!("{reply}\r\n").as_bytes()).await;
                    }
                });
            }
        });
        sink
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn set_reply(&self, reply: &str) {
        *self.reply_to_data.lock().unwrap() = reply.into();
    }
}
