-- authmilter driven stage by stage with miltertest (the reference milter test
-- tool): a passing message with a forged Authentication-Results, a spoof on
-- the same connection, and an abort mid-message. Run inside the integration
-- namespace, where knot serves bank.test and authmilter listens on 8897.

-- miltertest does not print uncaught errors: say what failed first.
local function check(cond, what)
  if not cond then
    print("miltertest check failed: " .. what)
    error(what)
  end
end

local conn = mt.connect("inet:8897@127.0.0.1", 10, 1)
check(conn ~= nil, "mt.connect() failed")

check(mt.conninfo(conn, "mail.bank.test", "192.0.2.10") == nil, "conninfo failed")
check(mt.getreply(conn) == SMFIR_CONTINUE, "conninfo not continued")
check(mt.helo(conn, "mail.bank.test") == nil, "helo failed")
check(mt.getreply(conn) == SMFIR_CONTINUE, "helo not continued")

-- Message 1: SPF passes and aligns; the forged header must be deleted.
mt.macro(conn, SMFIC_MAIL, "i", "MT0001")
check(mt.mailfrom(conn, "<alerts@bank.test>") == nil, "mailfrom failed")
check(mt.getreply(conn) == SMFIR_CONTINUE, "mailfrom not continued")
check(mt.rcptto(conn, "<bob@recipient.test>") == nil, "rcptto failed")
check(mt.getreply(conn) == SMFIR_CONTINUE, "rcptto not continued")
check(mt.header(conn, "Authentication-Results", "mx.recipient.test; dkim=pass header.d=bank.test") == nil, "header failed")
check(mt.header(conn, "From", "Bank <alerts@bank.test>") == nil, "header failed")
check(mt.header(conn, "Subject", "statement") == nil, "header failed")
check(mt.eoh(conn) == nil, "eoh failed")
check(mt.bodystring(conn, "Your statement is ready.\r\n") == nil, "body failed")
check(mt.eom(conn) == nil, "eom failed")
check(mt.eom_check(conn, MT_HDRINSERT, "Authentication-Results") or
      mt.eom_check(conn, MT_HDRADD, "Authentication-Results"), "no Authentication-Results added")
check(mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results"), "forged Authentication-Results not deleted")
check(mt.getreply(conn) == SMFIR_ACCEPT or mt.getreply(conn) == SMFIR_CONTINUE, "message 1 not accepted")

-- Message 2 on the same connection: an abort mid-message.
mt.macro(conn, SMFIC_MAIL, "i", "MT0002")
check(mt.mailfrom(conn, "<x@evil.test>") == nil, "mailfrom 2 failed")
check(mt.rcptto(conn, "<bob@recipient.test>") == nil, "rcptto 2 failed")
check(mt.header(conn, "From", "security@bank.test") == nil, "header 2 failed")
check(mt.abort(conn) == nil, "abort failed")

-- Message 3: a spoof of the p=reject domain from an authorised HELO but an
-- unauthorised envelope: rejected with 550 5.7.1.
mt.macro(conn, SMFIC_MAIL, "i", "MT0003")
check(mt.mailfrom(conn, "<x@evil.test>") == nil, "mailfrom 3 failed")
check(mt.rcptto(conn, "<bob@recipient.test>") == nil, "rcptto 3 failed")
check(mt.header(conn, "From", "Bank Security <security@bank.test>") == nil, "header 3 failed")
check(mt.eoh(conn) == nil, "eoh 3 failed")
check(mt.bodystring(conn, "Click here.\r\n") == nil, "body 3 failed")
check(mt.eom(conn) == nil, "eom 3 failed")
check(mt.getreply(conn) == SMFIR_REPLYCODE, "spoof not rejected with a reply code")
check(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
                   "Email from bank.test rejected per its DMARC policy"), "reply is not 550 5.7.1")

mt.disconnect(conn)
