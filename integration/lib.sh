# Shared by integration/run and integration/bench (sourced, not run).
# Callers define NS (their network namespace), WORK and POSTFIX_BACKUP.

# apt_install_missing PKG...: installs the packages that are not installed
# ("removed, config kept" counts as missing), without letting their scripts
# start services on this machine. Exits 2 when apt-get fails.
apt_install_missing() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing ${missing[*]}"
    apt-get update -qq
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    local had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    if [ $had_policy = 0 ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    apt-get install -y -qq "${missing[@]}" >"$WORK/apt.log" 2>&1
    local rc=$?
    [ $had_policy = 0 ] && rm -f /usr/sbin/policy-rc.d
    if [ $rc -ne 0 ]; then
        tail -20 "$WORK/apt.log"
        echo "$(basename "$0"): apt-get install failed" >&2
        exit 2
    fi
}

# postfix_take_over: refuses while a Postfix master runs, then keeps the
# system's main.cf and master.cf in POSTFIX_BACKUP (postfix_restore puts
# them back).
postfix_take_over() {
    if pgrep -x master >/dev/null 2>&1; then
        echo "$(basename "$0"): a Postfix master is already running on this machine; stop it first" >&2
        return 1
    fi
    mkdir -p "$POSTFIX_BACKUP"
    cp -p /etc/postfix/main.cf "$POSTFIX_BACKUP"/ 2>/dev/null || touch "$POSTFIX_BACKUP/main.cf"
    cp -p /etc/postfix/master.cf "$POSTFIX_BACKUP"/
}

# postfix_stop: stops the Postfix started in NS, killing its master if it
# does not exit within 5 seconds.
postfix_stop() {
    ip netns exec "$NS" postfix stop >/dev/null 2>&1
    local mpid
    mpid=$(tr -d ' ' < /var/spool/postfix/pid/master.pid 2>/dev/null)
    for _ in $(seq 1 25); do
        [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null || break
        sleep 0.2
    done
    [ -n "$mpid" ] && kill -9 "$mpid" 2>/dev/null
}

# postfix_restore: the system's configuration back, the queues emptied of
# what the run left (with the run's main.cf gone, postsuper logs normally
# instead of to the stopped postlog service).
postfix_restore() {
    [ -d "$POSTFIX_BACKUP" ] || return 0
    cp -p "$POSTFIX_BACKUP"/main.cf "$POSTFIX_BACKUP"/master.cf /etc/postfix/ 2>/dev/null
    postsuper -d ALL >/dev/null 2>&1
    postsuper -d ALL hold >/dev/null 2>&1
    [ -z "$(ls -A /var/spool/postfix/hold 2>/dev/null)" ] || echo "warning: messages left in the hold queue" >&2
}
