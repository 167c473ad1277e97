//! The milter callbacks: thin. Each extracts its arguments, calls one session
//! method and maps the outcome to a milter status. A missing session or an
//! internal error is answered with tempfail, never a panic.
//!
//! Round trips: every stage at which authmilter never rejects is negotiated
//! without replies (milter v6 `SMFIP_NR_*`) when the MTA offers it, so a
//! message costs one round trip at end of message instead of one per command.

use crate::{
    actions,
    checks::evidence::TlsInfo,
    session::{Client, MailInfo, Outcome, Session},
    stats::Stats,
    Shared,
};
use futures::FutureExt;
use indymilter::{
    Actions, Callbacks, Context, ContextActions, EomContext, MacroStage, Macros, NegotiateContext,
    ProtoOpts, SetErrorReply, SocketInfo, Status,
};
use std::{any::Any, ffi::CString, panic::AssertUnwindSafe, sync::Arc};
use tracing::{debug, error, warn};

/// Macros requested from the MTA, per stage.
pub const CONNECT_MACROS: &str = "j {daemon_name} {client_addr} {client_name}";
/// The TLS session: Postfix (`milter_helo_macros`) and Sendmail
/// (`confMILTER_MACROS_HELO`) send these at HELO by default; a HELO after
/// STARTTLS replaces them. Read at MAIL FROM, where they are still in force.
pub const HELO_MACROS: &str = "{tls_version} {cipher} {cipher_bits}";
pub const MAIL_MACROS: &str = "i {auth_authen} {auth_type} {mail_addr}";
pub const EOM_MACROS: &str = "i";

fn macro_value(macros: &Macros, name: &str) -> Option<String> {
    let c = CString::new(name).ok()?;
    macros
        .get(&c)
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty())
}

fn queue_id(macros: &Macros) -> Option<String> {
    macro_value(macros, "i")
}

fn reply_status(reply: &mut impl SetErrorReply, outcome: Outcome) -> Status {
    match outcome {
        Outcome::Continue => Status::Continue,
        Outcome::Reject(r) | Outcome::Tempfail(r) => {
            let temp = r.code / 100 == 4;
            let _ = reply.set_error_reply(&r.code.to_string(), Some(&r.status), [r.text.as_str()]);
            if temp {
                Status::Tempfail
            } else {
                Status::Reject
            }
        }
    }
}

/// How often a long end-of-message wait reports progress to the MTA.
pub const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

macro_rules! session {
    ($ctx:expr) => {
        match $ctx.data.as_mut() {
            Some(s) => s,
            None => {
                error!("no session state for this connection; tempfail");
                return Status::Tempfail;
            }
        }
    };
}

/// After a stage: a panic is isolated to this message (logged, counted, the
/// message poisoned so its verdict is tempfail); `Continue` becomes `Noreply`
/// where the stage was negotiated without replies.
fn finish(
    stats: &Stats,
    session: Option<&mut Session>,
    stage: &'static str,
    nr: ProtoOpts,
    result: Result<Status, Box<dyn Any + Send>>,
) -> Status {
    let noreply = session
        .as_ref()
        .is_some_and(|s| ProtoOpts::from_bits_truncate(s.noreply).contains(nr) && !nr.is_empty());
    match result {
        Ok(Status::Continue) if noreply => Status::Noreply,
        Ok(status) => status,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            stats.note_panic(stage);
            error!(stage, "internal error: {what}; tempfail for this message");
            if let Some(s) = session {
                s.poisoned = true;
            }
            if noreply {
                Status::Noreply
            } else {
                Status::Tempfail
            }
        }
    }
}

/// Runs a stage body with panic isolation, then `finish`.
macro_rules! stage {
    ($stats:expr, $ctx:ident, $name:literal, $nr:expr, $body:expr) => {{
        let result = AssertUnwindSafe(async { $body }).catch_unwind().await;
        finish(&$stats, $ctx.data.as_mut(), $name, $nr, result)
    }};
}

/// All callbacks, sharing the reloadable runtime.
pub fn callbacks(shared: Arc<Shared>) -> Callbacks<Session> {
    let stats = shared.current().stats.clone();
    let st = move || stats.clone();
    let (s2, s3, s4, s5, s6, s7, s8, s9, s10) =
        (st(), st(), st(), st(), st(), st(), st(), st(), st());
    Callbacks::new()
        .on_negotiate(move |ctx, actions, opts| {
            let shared = shared.clone();
            Box::pin(async move { handle_negotiate(shared, ctx, actions, opts) })
        })
        .on_connect(move |ctx, hostname, info| {
            let stats = s2.clone();
            Box::pin(async move {
                stage!(stats, ctx, "connect", ProtoOpts::NOREPLY_CONNECT, {
                    handle_connect(ctx, hostname, info)
                })
            })
        })
        .on_helo(move |ctx, helo| {
            let stats = s3.clone();
            Box::pin(async move {
                stage!(stats, ctx, "helo", ProtoOpts::NOREPLY_HELO, {
                    session!(ctx).helo(&helo.to_string_lossy());
                    Status::Continue
                })
            })
        })
        .on_mail(move |ctx, args| {
            let stats = s4.clone();
            Box::pin(async move {
                stage!(stats, ctx, "mail", ProtoOpts::NOREPLY_MAIL, {
                    handle_mail(ctx, args).await
                })
            })
        })
        .on_rcpt(move |ctx, args| {
            let stats = s5.clone();
            Box::pin(async move {
                stage!(stats, ctx, "rcpt", ProtoOpts::NOREPLY_RCPT, {
                    let rcpt = args.first().map(|a| a.to_string_lossy().into_owned());
                    session!(ctx).rcpt(rcpt.as_deref().unwrap_or(""));
                    Status::Continue
                })
            })
        })
        .on_header(move |ctx, name, value| {
            let stats = s6.clone();
            Box::pin(async move {
                stage!(stats, ctx, "header", ProtoOpts::NOREPLY_HEADER, {
                    session!(ctx).header(&name.to_string_lossy(), value.as_bytes());
                    Status::Continue
                })
            })
        })
        .on_eoh(move |ctx| {
            let stats = s7.clone();
            Box::pin(async move {
                stage!(stats, ctx, "eoh", ProtoOpts::NOREPLY_EOH, {
                    session!(ctx).eoh();
                    Status::Continue
                })
            })
        })
        .on_body(move |ctx, chunk| {
            let stats = s8.clone();
            Box::pin(async move {
                stage!(stats, ctx, "body", ProtoOpts::NOREPLY_BODY, {
                    session!(ctx).body(&chunk);
                    Status::Continue
                })
            })
        })
        .on_eom(move |ctx| {
            let stats = s9.clone();
            Box::pin(async move {
                stage!(stats, ctx, "eom", ProtoOpts::empty(), {
                    handle_eom(ctx).await
                })
            })
        })
        .on_abort(move |ctx| {
            let stats = s10.clone();
            Box::pin(async move {
                stage!(stats, ctx, "abort", ProtoOpts::empty(), {
                    session!(ctx).abort();
                    Status::Continue
                })
            })
        })
}

fn handle_negotiate(
    shared: Arc<Shared>,
    ctx: &mut NegotiateContext<Session>,
    actions: Actions,
    opts: ProtoOpts,
) -> Status {
    let needed = Actions::ADD_HEADER | Actions::CHANGE_HEADER | Actions::QUARANTINE;
    if !actions.contains(Actions::ADD_HEADER | Actions::CHANGE_HEADER) {
        warn!("MTA does not offer the header actions authmilter needs; refusing");
        return Status::Reject;
    }
    ctx.requested_actions = needed & actions;
    let rt = shared.current();
    let mut wanted = ProtoOpts::NO_UNKNOWN | ProtoOpts::NO_DATA | ProtoOpts::LEADING_SPACE;
    // No replies at stages where authmilter never rejects. MAIL FROM answers
    // only when SPF may reject there.
    let mut noreply = ProtoOpts::NOREPLY_CONNECT
        | ProtoOpts::NOREPLY_HELO
        | ProtoOpts::NOREPLY_RCPT
        | ProtoOpts::NOREPLY_HEADER
        | ProtoOpts::NOREPLY_EOH
        | ProtoOpts::NOREPLY_BODY;
    if !rt.config.policy.spf_reject_at_mail {
        noreply |= ProtoOpts::NOREPLY_MAIL;
    }
    wanted |= noreply;
    let granted = wanted & opts;
    ctx.requested_opts = granted;
    if actions.contains(Actions::REQUEST_MACROS) {
        for (stage, list) in [
            (MacroStage::Connect, CONNECT_MACROS),
            (MacroStage::Helo, HELO_MACROS),
            (MacroStage::Mail, MAIL_MACROS),
            (MacroStage::Eom, EOM_MACROS),
        ] {
            if let Ok(c) = CString::new(list) {
                ctx.requested_macros.insert(stage, c);
            }
        }
    }
    let mut session = Session::new(rt, granted.contains(ProtoOpts::LEADING_SPACE));
    session.conn.can_quarantine = actions.contains(Actions::QUARANTINE);
    if !session.conn.can_quarantine {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            warn!(
                "MTA does not offer the quarantine action: quarantine verdicts are tagged instead"
            )
        });
    }
    session.noreply = (granted & noreply).bits();
    ctx.data = Some(session);
    Status::Continue
}

fn handle_connect(ctx: &mut Context<Session>, hostname: CString, info: SocketInfo) -> Status {
    let client = match info {
        // An IPv4-mapped IPv6 address (::ffff:192.0.2.1) is the IPv4 client.
        SocketInfo::Inet(addr) => Client::Inet(addr.ip().to_canonical()),
        SocketInfo::Unix(_) => Client::Local,
        SocketInfo::Unknown => Client::Unknown,
    };
    let ip = client.ip();
    let session = session!(ctx);
    session.connect(&hostname.to_string_lossy(), client);
    debug!(client = ?ip, name = %hostname.to_string_lossy(), "connect");
    Status::Continue
}

async fn handle_mail(ctx: &mut Context<Session>, args: Vec<CString>) -> Status {
    let reverse_path = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let m = &ctx.macros;
    let info = MailInfo {
        queue_id: queue_id(m),
        auth_user: macro_value(m, "{auth_authen}"),
        auth_type: macro_value(m, "{auth_type}"),
        tls: macro_value(m, "{tls_version}").map(|version| TlsInfo {
            version,
            cipher: macro_value(m, "{cipher}"),
            bits: macro_value(m, "{cipher_bits}"),
        }),
    };
    let outcome = session!(ctx).mail(&reverse_path, info).await;
    reply_status(&mut ctx.reply, outcome)
}

async fn handle_eom(ctx: &mut EomContext<Session>) -> Status {
    let qid = queue_id(&ctx.macros);
    let session = session!(ctx);
    if session.poisoned {
        error!(
            queue_id = qid.as_deref().unwrap_or("-"),
            "an internal error hit this message earlier; tempfail"
        );
        session.msg = None;
        session
            .rt
            .stats
            .record(crate::policy::Action::Tempfail, false);
        return Status::Tempfail;
    }
    // A long wait sends SMFIR_PROGRESS now and then, so an MTA whose milter
    // timeout is shorter than limits.message_deadline does not give up first.
    let result = {
        let eom = session.eom(qid.clone());
        tokio::pin!(eom);
        let mut ticks = tokio::time::interval_at(
            tokio::time::Instant::now() + PROGRESS_INTERVAL,
            PROGRESS_INTERVAL,
        );
        loop {
            tokio::select! {
                r = &mut eom => break r,
                _ = ticks.tick() => {
                    if let Err(e) = ctx.actions.progress().await {
                        debug!("cannot send progress: {e}");
                    }
                }
            }
        }
    };
    let session = session!(ctx);
    let Some((_ev, plan)) = result else {
        error!(
            queue_id = qid.as_deref().unwrap_or("-"),
            "end of message without a message; tempfail"
        );
        return Status::Tempfail;
    };
    session.msg = None;
    match actions::apply(&plan, &ctx.actions, &mut ctx.reply).await {
        Ok(status) => status,
        Err(e) => {
            error!(
                queue_id = qid.as_deref().unwrap_or("-"),
                "cannot send modifications: {e}; tempfail"
            );
            Status::Tempfail
        }
    }
}
