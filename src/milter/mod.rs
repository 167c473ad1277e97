//! The milter callbacks: thin. Each extracts its arguments, calls one session
//! method and maps the outcome to a milter status. A missing session or an
//! internal error is answered with tempfail, never a panic.

use crate::{
    actions,
    session::{Outcome, Session},
    stats::Stats,
    Shared,
};
use futures::FutureExt;
use indymilter::{
    Actions, Callbacks, Context, EomContext, MacroStage, Macros, NegotiateContext, ProtoOpts,
    SetErrorReply, SocketInfo, Status,
};
use std::{
    ffi::CString,
    panic::AssertUnwindSafe,
    sync::{atomic::Ordering, Arc},
};
use tracing::{debug, error, warn};

/// Macros requested from the MTA, per stage.
pub const CONNECT_MACROS: &str = "j {daemon_name} {client_addr} {client_name}";
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

/// Runs a callback body; a panic inside it is isolated to this session:
/// logged, counted, and answered with tempfail (the MTA's failure action).
async fn guarded(
    stats: Arc<Stats>,
    stage: &'static str,
    fut: impl std::future::Future<Output = Status>,
) -> Status {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(status) => status,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            stats.internal_errors.fetch_add(1, Ordering::Relaxed);
            error!(stage, "internal error: {what}; tempfail for this message");
            Status::Tempfail
        }
    }
}

/// All callbacks, sharing the reloadable runtime.
pub fn callbacks(shared: Arc<Shared>) -> Callbacks<Session> {
    let stats = shared.current().stats.clone();
    let neg_shared = shared.clone();
    let (s1, s2, s3, s4, s5, s6, s7, s8, s9, s10) = (
        stats.clone(),
        stats.clone(),
        stats.clone(),
        stats.clone(),
        stats.clone(),
        stats.clone(),
        stats.clone(),
        stats.clone(),
        stats.clone(),
        stats,
    );
    Callbacks::new()
        .on_negotiate(move |ctx, actions, opts| {
            let shared = neg_shared.clone();
            Box::pin(guarded(
                s1.clone(),
                "negotiate",
                handle_negotiate(shared, ctx, actions, opts),
            ))
        })
        .on_connect(move |ctx, hostname, info| {
            Box::pin(guarded(
                s2.clone(),
                "connect",
                handle_connect(ctx, hostname, info),
            ))
        })
        .on_helo(move |ctx, helo| {
            Box::pin(guarded(s3.clone(), "helo", async move {
                session!(ctx).helo(&helo.to_string_lossy());
                Status::Continue
            }))
        })
        .on_mail(move |ctx, args| Box::pin(guarded(s4.clone(), "mail", handle_mail(ctx, args))))
        .on_rcpt(move |ctx, _args| {
            Box::pin(guarded(s5.clone(), "rcpt", async move {
                session!(ctx).rcpt();
                Status::Continue
            }))
        })
        .on_header(move |ctx, name, value| {
            Box::pin(guarded(s6.clone(), "header", async move {
                session!(ctx).header(&name.to_string_lossy(), value.as_bytes());
                Status::Continue
            }))
        })
        .on_eoh(move |ctx| {
            Box::pin(guarded(s7.clone(), "eoh", async move {
                session!(ctx).eoh();
                Status::Continue
            }))
        })
        .on_body(move |ctx, chunk| {
            Box::pin(guarded(s8.clone(), "body", async move {
                session!(ctx).body(&chunk);
                Status::Continue
            }))
        })
        .on_eom(move |ctx| Box::pin(guarded(s9.clone(), "eom", handle_eom(ctx))))
        .on_abort(move |ctx| {
            Box::pin(guarded(s10.clone(), "abort", async move {
                session!(ctx).abort();
                Status::Continue
            }))
        })
}

async fn handle_negotiate(
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
    let mut wanted = ProtoOpts::NO_UNKNOWN | ProtoOpts::NO_DATA;
    let leading_space = opts.contains(ProtoOpts::LEADING_SPACE);
    if leading_space {
        wanted |= ProtoOpts::LEADING_SPACE;
    }
    ctx.requested_opts = wanted & opts;
    if actions.contains(Actions::REQUEST_MACROS) {
        for (stage, list) in [
            (MacroStage::Connect, CONNECT_MACROS),
            (MacroStage::Mail, MAIL_MACROS),
            (MacroStage::Eom, EOM_MACROS),
        ] {
            if let Ok(c) = CString::new(list) {
                ctx.requested_macros.insert(stage, c);
            }
        }
    }
    let rt = shared.current();
    ctx.data = Some(Session::new(rt, leading_space));
    Status::Continue
}

async fn handle_connect(ctx: &mut Context<Session>, hostname: CString, info: SocketInfo) -> Status {
    let ip = match info {
        SocketInfo::Inet(addr) => Some(addr.ip()),
        _ => None,
    };
    let session = session!(ctx);
    session.connect(&hostname.to_string_lossy(), ip);
    debug!(client = ?ip, name = %hostname.to_string_lossy(), "connect");
    Status::Continue
}

async fn handle_mail(ctx: &mut Context<Session>, args: Vec<CString>) -> Status {
    let reverse_path = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let qid = queue_id(&ctx.macros);
    let auth = macro_value(&ctx.macros, "{auth_authen}");
    let outcome = session!(ctx).mail(&reverse_path, qid, auth).await;
    reply_status(&mut ctx.reply, outcome)
}

async fn handle_eom(ctx: &mut EomContext<Session>) -> Status {
    let qid = queue_id(&ctx.macros);
    let session = session!(ctx);
    let Some((_ev, plan)) = session.eom(qid.clone()).await else {
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
