//! Report files and report mail: the RFC 9990 §3.5 file name, gzip, the
//! message (Subject `Report Domain: … Submitter: … Report-ID: …`, the
//! gzipped XML as `application/gzip`), and SMTP submission to the relay.

use lettre::{
    message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use std::{io::Write, time::Duration};

/// The RFC 9990 §3.5.1 file name:
/// `receiver "!" policy-domain "!" begin "!" end "!" unique-id ".xml.gz"`.
pub fn filename(submitter: &str, domain: &str, begin: i64, end: i64, id: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect()
    };
    format!(
        "{}!{}!{begin}!{end}!{}.xml.gz",
        clean(submitter),
        clean(domain),
        clean(id)
    )
}

/// Gzips a document.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("writing to memory");
    e.finish().expect("writing to memory")
}

/// The RFC 9990 §3.5.2 Subject.
pub fn subject(domain: &str, submitter: &str, id: &str) -> String {
    format!("Report Domain: {domain} Submitter: {submitter} Report-ID: {id}")
}

/// Where and how report mail is submitted.
#[derive(Clone, Debug)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub timeout: Duration,
}

impl Relay {
    /// Parses `host:port` (`[v6]:port`; port 25 when absent).
    pub fn parse(s: &str, timeout: Duration) -> Result<Self, String> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest.split_once(']').ok_or("missing `]`")?;
            (h.to_string(), p.strip_prefix(':').unwrap_or("25"))
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (s.to_string(), "25"),
            }
        };
        let port = port.parse().map_err(|_| format!("bad port in `{s}`"))?;
        if host.is_empty() {
            return Err(format!("no host in `{s}`"));
        }
        Ok(Self {
            host,
            port,
            timeout,
        })
    }
}

/// A failed submission: permanent (5xx, a bad address: drop the
/// destination) or not (retry on the next run).
#[derive(Debug)]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

/// One message to submit.
pub struct Mail<'a> {
    pub from_name: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub message_id: &'a str,
    pub text: String,
    pub attachment: Option<(&'a str, &'a str, Vec<u8>)>,
}

/// Builds the message.
pub fn build(m: Mail<'_>) -> Result<Message, SendError> {
    let bad = |e: String| SendError {
        permanent: true,
        message: e,
    };
    let from: Mailbox = format!("{} <{}>", m.from_name.replace(['<', '>', '"'], ""), m.from)
        .parse()
        .or_else(|_| m.from.parse())
        .map_err(|e| bad(format!("reports.contact `{}`: {e}", m.from)))?;
    let to: Mailbox =
        m.to.parse()
            .map_err(|e| bad(format!("destination `{}`: {e}", m.to)))?;
    let builder = Message::builder()
        .from(from)
        .to(to)
        .subject(m.subject)
        .message_id(Some(m.message_id.to_string()));
    let text = SinglePart::plain(m.text);
    let msg = match m.attachment {
        Some((name, ctype, body)) => {
            let ct = ContentType::parse(ctype).map_err(|e| bad(e.to_string()))?;
            builder.multipart(
                MultiPart::mixed()
                    .singlepart(text)
                    .singlepart(Attachment::new(name.to_string()).body(body, ct)),
            )
        }
        None => builder.singlepart(text),
    };
    msg.map_err(|e| bad(e.to_string()))
}

/// Submits `msg` to the relay (plain SMTP: the relay is local or on a
/// trusted network; it delivers onwards with STARTTLS as it is configured).
pub async fn send(relay: &Relay, msg: Message) -> Result<(), SendError> {
    submit(relay, relay.transport().send(msg)).await
}

impl Relay {
    fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.as_str())
            .port(self.port)
            .timeout(Some(self.timeout))
            .build()
    }
}

/// One submission, bounded in time, its error classified.
async fn submit<T>(
    relay: &Relay,
    sending: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<(), SendError> {
    match tokio::time::timeout(relay.timeout * 2, sending).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(SendError {
            permanent: e.is_permanent(),
            message: e.to_string(),
        }),
        Err(_) => Err(SendError {
            permanent: false,
            message: format!("no answer from {}:{} in time", relay.host, relay.port),
        }),
    }
}

/// Submits raw RFC 5322 bytes (failure reports, whose MIME structure
/// lettre does not build).
pub async fn send_raw(relay: &Relay, from: &str, to: &str, raw: &[u8]) -> Result<(), SendError> {
    let bad = |e: String| SendError {
        permanent: true,
        message: e,
    };
    let envelope = lettre::address::Envelope::new(
        Some(from.parse().map_err(|e| bad(format!("{from}: {e}")))?),
        vec![to.parse().map_err(|e| bad(format!("{to}: {e}")))?],
    )
    .map_err(|e| bad(e.to_string()))?;
    submit(relay, relay.transport().send_raw(&envelope, raw)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9990_file_name_and_subject() {
        assert_eq!(
            filename("mx.example.net", "example.com", 100, 199, "abc123"),
            "mx.example.net!example.com!100!199!abc123.xml.gz"
        );
        // Nothing from DNS can add a path separator or a `!`.
        assert_eq!(
            filename("mx", "a/b!c.example", 1, 2, "x!/y"),
            "mx!abc.example!1!2!xy.xml.gz"
        );
        assert_eq!(
            subject("example.com", "mx.example.net", "abc"),
            "Report Domain: example.com Submitter: mx.example.net Report-ID: abc"
        );
    }

    #[test]
    fn relay_addresses() {
        let t = Duration::from_secs(1);
        let r = Relay::parse("127.0.0.1:2525", t).unwrap();
        assert_eq!((r.host.as_str(), r.port), ("127.0.0.1", 2525));
        let r = Relay::parse("[::1]:26", t).unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 26));
        assert_eq!(Relay::parse("mail.example", t).unwrap().port, 25);
        assert!(Relay::parse(":25", t).is_err());
        assert!(Relay::parse("h:x", t).is_err());
    }

    #[test]
    fn gzip_round_trip() {
        use std::io::Read;
        let z = gzip(b"<feedback/>");
        let mut out = String::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "<feedback/>");
    }
}
