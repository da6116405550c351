package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"prismflow/pipeline"
	"prismflow/pipeline/config"
	"prismflow/schemas/events"
	"prismflow/stages/ingest"
)

// Source is the Source of the documents the connector creates.
const Source = "imap"

// Defaults of a mailbox's settings.
const (
	DefaultMailbox      = "INBOX"
	DefaultFlag         = "$PrismflowIngested"
	DefaultPollInterval = time.Minute
)

// Ingester is the part of ingest.Ingester the connector uses: it returns
// once the DocumentReceived event is acknowledged by Kafka.
type Ingester interface {
	Ingest(context.Context, ingest.Upload) (events.DocumentReceived, error)
}

// Connector watches mailboxes and ingests their new messages.
type Connector struct {
	Ingest Ingester
	// DB holds table imap_messages (persist's migrations create it).
	DB *pgxpool.Pool
	// Tenant owns the documents; default "default".
	Tenant    string
	Mailboxes []config.IMAPMailbox
	Log       *slog.Logger
	// TLSConfig, when set, is the base TLS configuration (tests pass
	// their own root CAs); ServerName is set from the address.
	TLSConfig *tls.Config
}

// Run watches every mailbox until ctx is cancelled, reconnecting after
// errors. It returns an error at once for an invalid mailbox
// configuration, and ctx's error when cancelled.
func (c *Connector) Run(ctx context.Context) error {
	mbs, err := normalize(c.Mailboxes)
	if err != nil {
		return err
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, mb := range mbs {
		w := &watcher{c: c, mb: mb, log: log.With("mailbox", mb.Name), st: store{c.DB}}
		g.Go(func() error { return w.run(ctx) })
	}
	return g.Wait()
}

// normalize checks the mailboxes and fills in defaults.
func normalize(in []config.IMAPMailbox) ([]config.IMAPMailbox, error) {
	if len(in) == 0 {
		return nil, errors.New("imap: no mailbox configured")
	}
	seen := map[string]bool{}
	out := slices.Clone(in)
	for i := range out {
		mb := &out[i]
		switch {
		case mb.Name == "":
			return nil, fmt.Errorf("imap: mailbox %d has no name", i)
		case seen[mb.Name]:
			return nil, fmt.Errorf("imap: two mailboxes named %q", mb.Name)
		case mb.Addr == "":
			return nil, fmt.Errorf("imap: mailbox %s has no addr", mb.Name)
		case mb.Username == "":
			return nil, fmt.Errorf("imap: mailbox %s has no username", mb.Name)
		case mb.Password == "" && mb.XOAuth2Token == "":
			return nil, fmt.Errorf("imap: mailbox %s has neither password nor xoauth2_token", mb.Name)
		}
		seen[mb.Name] = true
		if mb.TLS == "" {
			mb.TLS = "tls"
		}
		if mb.TLS != "none" && mb.TLS != "tls" && mb.TLS != "starttls" {
			return nil, fmt.Errorf("imap: mailbox %s: tls must be none, tls or starttls, got %q", mb.Name, mb.TLS)
		}
		if mb.Mailbox == "" {
			mb.Mailbox = DefaultMailbox
		}
		if mb.PollInterval <= 0 {
			mb.PollInterval = DefaultPollInterval
		}
		if mb.After == "" {
			mb.After = "flag"
		}
		switch mb.After {
		case "flag":
			if mb.Flag == "" {
				mb.Flag = DefaultFlag
			}
		case "move":
			if mb.MoveTo == "" {
				return nil, fmt.Errorf("imap: mailbox %s: after=move needs move_to", mb.Name)
			}
		default:
			return nil, fmt.Errorf("imap: mailbox %s: after must be flag or move, got %q", mb.Name, mb.After)
		}
	}
	return out, nil
}

// watcher owns one mailbox's connection.
type watcher struct {
	c   *Connector
	mb  config.IMAPMailbox
	log *slog.Logger
	st  store
}

func (w *watcher) run(ctx context.Context) error {
	const maxBackoff = 5 * time.Minute
	backoff := time.Second
	for {
		start := time.Now()
		err := w.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(start) > maxBackoff {
			backoff = time.Second // it worked for a while: a new failure
		}
		w.log.Error("imap session ended; reconnecting", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session is one connection: log in, select, then sync and wait until
// an error or cancellation.
func (w *watcher) session(ctx context.Context) error {
	// Woken by a new EXISTS while idling; buffered so the reader never blocks.
	wake := make(chan struct{}, 1)
	cl, err := w.dial(&imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case wake <- struct{}{}:
					default:
					}
				}
			},
		},
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	// The client's commands do not take a context: closing the
	// connection is what interrupts one in flight at cancellation.
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()

	if err := w.login(cl); err != nil {
		return err
	}
	if w.mb.After == "move" {
		// Creating an existing folder fails harmlessly; a real problem
		// shows at the first MOVE.
		_ = cl.Create(w.mb.MoveTo, nil).Wait()
	}
	sel, err := cl.Select(w.mb.Mailbox, nil).Wait()
	if err != nil {
		return fmt.Errorf("select %s: %w", w.mb.Mailbox, err)
	}
	idle := (w.mb.IDLE == nil || *w.mb.IDLE) && (cl.Caps().Has(goimap.CapIdle) || cl.Caps().Has(goimap.CapIMAP4rev2))
	w.log.Info("imap mailbox watched", "folder", w.mb.Mailbox, "uidvalidity", sel.UIDValidity, "messages", sel.NumMessages, "idle", idle)

	for {
		if err := w.sync(ctx, cl, sel.UIDValidity); err != nil {
			return err
		}
		if err := w.wait(ctx, cl, idle, wake); err != nil {
			return err
		}
	}
}

func (w *watcher) dial(opts *imapclient.Options) (*imapclient.Client, error) {
	var tc *tls.Config
	if w.c.TLSConfig != nil {
		tc = w.c.TLSConfig.Clone()
	} else {
		tc = &tls.Config{}
	}
	if host, _, err := net.SplitHostPort(w.mb.Addr); err == nil && tc.ServerName == "" {
		tc.ServerName = host
	}
	tc.InsecureSkipVerify = tc.InsecureSkipVerify || w.mb.InsecureSkipVerify
	opts.TLSConfig = tc
	var (
		cl  *imapclient.Client
		err error
	)
	switch w.mb.TLS {
	case "none":
		cl, err = imapclient.DialInsecure(w.mb.Addr, opts)
	case "starttls":
		cl, err = imapclient.DialStartTLS(w.mb.Addr, opts)
	default:
		cl, err = imapclient.DialTLS(w.mb.Addr, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s (%s): %w", w.mb.Addr, w.mb.TLS, err)
	}
	if err := cl.WaitGreeting(); err != nil {
		cl.Close()
		return nil, fmt.Errorf("greeting of %s: %w", w.mb.Addr, err)
	}
	return cl, nil
}

func (w *watcher) login(cl *imapclient.Client) error {
	if w.mb.XOAuth2Token != "" {
		if err := cl.Authenticate(&xoauth2{username: w.mb.Username, token: w.mb.XOAuth2Token.Reveal()}); err != nil {
			return fmt.Errorf("authenticate %s with XOAUTH2: %w", w.mb.Username, err)
		}
		return nil
	}
	if err := cl.Login(w.mb.Username, w.mb.Password.Reveal()).Wait(); err != nil {
		return fmt.Errorf("login %s: %w", w.mb.Username, err)
	}
	return nil
}

// wait returns when the mailbox may have new mail: at a new EXISTS under
// IDLE, or after the poll interval.
func (w *watcher) wait(ctx context.Context, cl *imapclient.Client, idle bool, wake <-chan struct{}) error {
	t := time.NewTimer(w.mb.PollInterval)
	defer t.Stop()
	if !idle {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			// NOOP both keeps the connection alive and tells a broken one.
			return cl.Noop().Wait()
		}
	}
	// Drain a wake-up from before IDLE: the sync that follows sees it.
	select {
	case <-wake:
	default:
	}
	cmd, err := cl.Idle()
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	case <-cl.Closed():
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("stop idle: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	return ctx.Err()
}

// sync handles every message of the folder not yet marked, in UID order.
func (w *watcher) sync(ctx context.Context, cl *imapclient.Client, uidValidity uint32) error {
	criteria := &goimap.SearchCriteria{NotFlag: []goimap.Flag{goimap.FlagDeleted}}
	if w.mb.After == "flag" {
		criteria.NotFlag = append(criteria.NotFlag, goimap.Flag(w.mb.Flag))
	}
	res, err := cl.UIDSearch(criteria, nil).Wait()
	if err != nil {
		return fmt.Errorf("search %s: %w", w.mb.Mailbox, err)
	}
	uids := res.AllUIDs()
	slices.Sort(uids)
	if err := w.settle(ctx, uidValidity, uids); err != nil {
		return err
	}
	for _, uid := range uids {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := key{mailbox: w.mb.Name, uidValidity: uidValidity, uid: uint32(uid)}
		if err := w.handle(ctx, cl, k); err != nil {
			return fmt.Errorf("message %s: %w", k, err)
		}
	}
	return nil
}

// settle records as marked the ingested messages the search no longer
// finds: a crash between marking on the server and recording it leaves
// the message flagged (or moved) but its record ingested, and the search
// will never return it again.
func (w *watcher) settle(ctx context.Context, uidValidity uint32, unmarked []goimap.UID) error {
	pending, err := w.st.inState(ctx, w.mb.Name, uidValidity, Ingested)
	if err != nil {
		return err
	}
	for _, uid := range pending {
		if slices.Contains(unmarked, goimap.UID(uid)) {
			continue
		}
		k := key{mailbox: w.mb.Name, uidValidity: uidValidity, uid: uid}
		if err := w.st.set(ctx, k, Marked, "mark found on the server"); err != nil {
			return err
		}
	}
	return nil
}

// handle takes one message as far as it can go: decided, ingested,
// marked, recording each step before the next.
func (w *watcher) handle(ctx context.Context, cl *imapclient.Client, k key) error {
	id, st, found, err := w.st.get(ctx, k)
	if err != nil {
		return err
	}
	log := w.log.With("uid", k.uid, "uidvalidity", k.uidValidity)
	switch {
	case found && (st == Skipped || st == Refused):
		return nil
	case found && st == Marked:
		// Marked on the server but the mark is not visible (a keyword
		// the folder does not keep, or a move that did not expunge):
		// nothing more to do, and never ingest again.
		return nil
	case found && st == Ingested:
		return w.mark(ctx, cl, k, id, log)
	}

	uidSet := goimap.UIDSetNum(goimap.UID(k.uid))
	head, err := cl.Fetch(uidSet, &goimap.FetchOptions{
		UID: true, Envelope: true, RFC822Size: true, BodyStructure: &goimap.FetchItemBodyStructure{Extended: true},
	}).Collect()
	if err != nil {
		return fmt.Errorf("fetch envelope: %w", err)
	}
	if len(head) == 0 {
		return nil // expunged meanwhile
	}
	env := head[0].Envelope
	if env == nil {
		env = &goimap.Envelope{}
	}
	if !takes(w.mb.Rules, attachments(head[0].BodyStructure)) {
		log.Info("message skipped by the mailbox's rules", "subject", env.Subject)
		return w.st.set(ctx, k, Skipped, "no attachment passed the rules")
	}

	id, st, err = w.st.reserve(ctx, k, env.MessageID)
	if err != nil {
		return err
	}
	if st != Reserved {
		// Another connector process got here first; let it finish.
		return nil
	}
	if err := w.ingest(ctx, cl, uidSet, id, env); err != nil {
		if pipeline.IsPermanent(err) {
			log.Warn("message refused by ingest", "err", err)
			return w.st.set(ctx, k, Refused, err.Error())
		}
		return err
	}
	if err := w.st.set(ctx, k, Ingested, ""); err != nil {
		return err
	}
	log.Info("message ingested", "document_id", id, "subject", env.Subject)
	return w.mark(ctx, cl, k, id, log)
}

// ingest streams the raw message into the ingester under id.
func (w *watcher) ingest(ctx context.Context, cl *imapclient.Client, uidSet goimap.UIDSet, id string, env *goimap.Envelope) error {
	section := &goimap.FetchItemBodySection{Peek: true} // Peek: \Seen is for people
	cmd := cl.Fetch(uidSet, &goimap.FetchOptions{UID: true, BodySection: []*goimap.FetchItemBodySection{section}})
	defer cmd.Close()
	msg := cmd.Next()
	if msg == nil {
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("fetch body: %w", err)
		}
		return pipeline.Permanent(errors.New("message vanished before its body was fetched"))
	}
	var body io.Reader
	for item := msg.Next(); item != nil; item = msg.Next() {
		if b, ok := item.(imapclient.FetchItemDataBodySection); ok {
			body = b.Literal
			break
		}
	}
	if body == nil {
		return fmt.Errorf("fetch body: the server sent no body section")
	}
	_, err := w.c.Ingest.Ingest(ctx, ingest.Upload{
		ID:       id,
		Tenant:   w.tenant(),
		Filename: "message.eml",
		Body:     body,
		Source:   Source,
		Sender:   sender(env),
		Subject:  env.Subject,
	})
	if err != nil {
		return err
	}
	// Consume the rest of the response so that the command's own error,
	// if any, is seen before the message counts as fetched.
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("fetch body: %w", err)
	}
	return nil
}

// mark flags or moves an ingested message, then records it as marked.
func (w *watcher) mark(ctx context.Context, cl *imapclient.Client, k key, id string, log *slog.Logger) error {
	uidSet := goimap.UIDSetNum(goimap.UID(k.uid))
	switch w.mb.After {
	case "move":
		if _, err := cl.Move(uidSet, w.mb.MoveTo).Wait(); err != nil {
			return fmt.Errorf("move to %s: %w", w.mb.MoveTo, err)
		}
	default:
		err := cl.Store(uidSet, &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.Flag(w.mb.Flag)}}, nil).Close()
		if err != nil {
			return fmt.Errorf("flag %s: %w", w.mb.Flag, err)
		}
	}
	if err := w.st.set(ctx, k, Marked, ""); err != nil {
		return err
	}
	log.Debug("message marked", "document_id", id, "after", w.mb.After)
	return nil
}

func (w *watcher) tenant() string {
	if w.c.Tenant == "" {
		return "default"
	}
	return w.c.Tenant
}

// sender is the envelope's From address ("Name <a@b>" when named).
func sender(env *goimap.Envelope) string {
	for _, a := range env.From {
		if addr := a.Addr(); addr != "" {
			if a.Name != "" {
				return a.Name + " <" + addr + ">"
			}
			return addr
		}
	}
	return ""
}
