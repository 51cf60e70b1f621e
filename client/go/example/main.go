// The mailpool API from Go, with nothing but the generated stubs and grpc-go: open an IMAP
// session, list the newest messages, send one over SMTP, list the sessions, read the
// standard error details of a refused login, close everything.
//
// Configuration: MAILPOOL_ADDR (the daemon, default 127.0.0.1:50551), MAIL_HOST, MAIL_USER,
// MAIL_PASSWORD, MAIL_CA (a CA file, optional), MAIL_IMAPS_PORT, MAIL_SMTP_PORT; each falls
// back to the local test servers' MAILPOOL_TEST_* variables. Built and run by
// client/go/run_example.sh (stubs from proto/ with protoc-gen-go and protoc-gen-go-grpc).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	mailpoolv1 "mailpool.dev/api/mailpool/v1"
)

func env(name, testName, dflt string) string {
	for _, n := range []string{name, testName} {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return dflt
}

func port(name, testName, dflt string) uint32 {
	p, err := strconv.Atoi(env(name, testName, dflt))
	if err != nil {
		log.Fatalf("%s: not a port", name)
	}
	return uint32(p)
}

func main() {
	host := env("MAIL_HOST", "MAILPOOL_TEST_HOST", "127.0.0.1")
	user := env("MAIL_USER", "MAILPOOL_TEST_USER", "")
	password := env("MAIL_PASSWORD", "MAILPOOL_TEST_PASSWORD", "")
	caPEM := ""
	if ca := env("MAIL_CA", "MAILPOOL_TEST_CA", ""); ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			log.Fatal(err)
		}
		caPEM = string(b)
	}
	// README example begins
	conn, err := grpc.Dial(env("MAILPOOL_ADDR", "", "127.0.0.1:50551"), grpc.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	sessions := mailpoolv1.NewSessionServiceClient(conn)
	mailbox := mailpoolv1.NewMailboxServiceClient(conn)
	send := mailpoolv1.NewSendServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	endpoint := func(port uint32, security mailpoolv1.Security) *mailpoolv1.ServerEndpoint {
		return &mailpoolv1.ServerEndpoint{Host: host, Port: port, Security: security,
			Tls: &mailpoolv1.TlsOptions{CaPem: caPEM}}
	}
	creds := func(password string) *mailpoolv1.Credentials {
		return &mailpoolv1.Credentials{User: user,
			Secret: &mailpoolv1.Credentials_Password{Password: password}}
	}

	// 1. An IMAP session over implicit TLS, then its 5 newest messages (headers).
	imapPort := port("MAIL_IMAPS_PORT", "MAILPOOL_TEST_IMAPS_PORT", "993")
	started, err := sessions.StartSession(ctx, &mailpoolv1.StartSessionRequest{
		Name: "go-example",
		Protocol: &mailpoolv1.StartSessionRequest_Imap{Imap: &mailpoolv1.ImapOptions{
			Server:      endpoint(imapPort, mailpoolv1.Security_SECURITY_IMPLICIT_TLS),
			Credentials: creds(password)}}})
	if err != nil {
		log.Fatalf("start imap: %v", err)
	}
	imap := started.GetSession()
	fmt.Printf("IMAP session %s (%s), folder %s\n", imap.GetId(),
		imap.GetConnections()[0].GetTlsVersion(), imap.GetCurrentFolder())
	// Session-scoped calls also carry the ID in a header, for a proxy in front of daemons.
	sctx := metadata.AppendToOutgoingContext(ctx, "x-mailpool-session", imap.GetId())
	list, err := mailbox.ListMessages(sctx, &mailpoolv1.ListMessagesRequest{
		Session: imap.GetId(), PageSize: 5, View: mailpoolv1.MessageView_MESSAGE_VIEW_HEADERS})
	if err != nil {
		log.Fatalf("list: %v", err)
	}
	for _, m := range list.GetMessages() {
		fmt.Printf("  %s  %s\n", m.GetFrom().GetAddress(), m.GetSubject())
	}

	// 2. Send a message over an SMTP session (STARTTLS on the submission port).
	smtpPort := port("MAIL_SMTP_PORT", "MAILPOOL_TEST_SMTP_PORT", "587")
	smtp, err := sessions.StartSession(ctx, &mailpoolv1.StartSessionRequest{
		Protocol: &mailpoolv1.StartSessionRequest_Smtp{Smtp: &mailpoolv1.SmtpOptions{
			Server:      endpoint(smtpPort, mailpoolv1.Security_SECURITY_STARTTLS),
			Credentials: creds(password)}}})
	if err != nil {
		log.Fatalf("start smtp: %v", err)
	}
	sent, err := send.SendMessage(ctx, &mailpoolv1.SendMessageRequest{
		Session: smtp.GetSession().GetId(),
		Content: &mailpoolv1.SendMessageRequest_Message{Message: &mailpoolv1.EmailMessage{
			From:     &mailpoolv1.Address{Address: user},
			To:       []*mailpoolv1.Address{{Address: user}},
			Subject:  "Hello from Go",
			TextBody: "Sent through a pooled SMTP session.\n"}}})
	if err != nil {
		log.Fatalf("send: %v", err)
	}
	fmt.Printf("sent %s: %s\n", sent.GetMessageId(), sent.GetServerReply())

	// 3. Every session this caller holds, then close them.
	all, err := sessions.ListSessions(ctx, &mailpoolv1.ListSessionsRequest{})
	if err != nil {
		log.Fatalf("list sessions: %v", err)
	}
	for _, s := range all.GetSessions() {
		fmt.Printf("  session %s %s %s\n", s.GetId(), s.GetName(), s.GetProtocol())
		if _, err := sessions.CloseSession(ctx, &mailpoolv1.CloseSessionRequest{
			Session: s.GetId()}); err != nil {
			log.Fatalf("close: %v", err)
		}
	}

	// 4. A refused login: the gRPC code, and the standard details (google.rpc.ErrorInfo
	// in grpc-status-details-bin) with the mail server's own reply.
	_, err = sessions.StartSession(ctx, &mailpoolv1.StartSessionRequest{
		Protocol: &mailpoolv1.StartSessionRequest_Imap{Imap: &mailpoolv1.ImapOptions{
			Server:      endpoint(imapPort, mailpoolv1.Security_SECURITY_IMPLICIT_TLS),
			Credentials: creds("not the password")}}})
	st := status.Convert(err)
	if st.Code() != codes.Unauthenticated {
		log.Fatalf("expected UNAUTHENTICATED, got %v", err)
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if info == nil {
		log.Fatalf("no google.rpc.ErrorInfo in %v", st.Details())
	}
	fmt.Printf("wrong password -> %s %s/%s; server said: %q\n", st.Code(), info.GetDomain(),
		info.GetReason(), info.GetMetadata()["server_reply"])
	// README example ends
	fmt.Println("example finished")
}
