package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"prismflow/connectors/blob"
	"prismflow/connectors/console"
	"prismflow/connectors/console/live"
	"prismflow/connectors/console/pages"
	"prismflow/connectors/console/stats"
	"prismflow/connectors/httpapi"
	"prismflow/pipeline"
	"prismflow/pipeline/broker"
	"prismflow/pipeline/config"
	"prismflow/pipeline/pgserver"
	"prismflow/pipeline/registry"
	"prismflow/pipeline/topology"
	"prismflow/schemas"
	"prismflow/schemas/events"
	"prismflow/stages/analyze/chat"
	"prismflow/stages/classify"
	"prismflow/stages/ingest"
	"prismflow/stages/persist"
	"prismflow/stages/render"
)

func runCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline: with no configuration, everything embedded on this machine",
		Long: `Run the pipeline stages and the HTTP API.

With no configuration it runs an embedded Kafka broker (localhost:9092), an
embedded schema registry (localhost:8081), a private PostgreSQL and a blob
folder, all under the data directory, plus every stage and the API on
localhost:8080. Point it at real services with kafka.brokers,
schema_registry.url, postgres.dsn and blob.url (see 'prismflow config'), and
run a subset of stages per process with --stages to scale them apart.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			return run(cmd.Context(), c, newLogger(c))
		},
	}
	f := cmd.Flags()
	f.String("stages", "", "stages to run, comma separated (default all): "+fmt.Sprint(topology.Names))
	f.String("data-dir", "", "data folder (default ./data)")
	f.String("http-addr", "", "HTTP API address (default localhost:8080)")
	f.String("kafka-brokers", "", "Kafka brokers (default: embedded broker)")
	return cmd
}

// run assembles one prismflow process and runs it until ctx is cancelled
// (SIGINT/SIGTERM). Shutdown runs in reverse order of start: the stages
// drain and commit first, then the API stops, then the embedded services.
func run(ctx context.Context, c config.Config, log *slog.Logger) (err error) {
	var cleanups []func()
	defer func() {
		for _, f := range slices.Backward(cleanups) {
			f()
		}
	}()
	onExit := func(f func()) { cleanups = append(cleanups, f) }

	kopts, err := pipeline.KafkaOpts(c.Kafka)
	if err != nil {
		return err
	}
	tp, stopTracing, err := pipeline.Tracing(ctx, c.OTel.Endpoint, c.OTel.ServiceName)
	if err != nil {
		return err
	}
	onExit(func() {
		// Flush the spans still buffered; bounded, as the collector may
		// be gone.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(ctx); err != nil {
			log.Warn("flush traces", "err", err)
		}
	})
	if c.OTel.Endpoint != "" {
		// kotel spans on every Kafka client; without an exporter the
		// hooks are left out entirely rather than run as no-ops.
		kopts = append(kopts, pipeline.KafkaTracing(tp))
		log.Info("exporting traces", "endpoint", c.OTel.Endpoint, "service", c.OTel.ServiceName)
	}
	brokers := c.Kafka.Brokers
	if c.Embedded() {
		b, err := broker.Start(ctx, broker.Config{DataDir: filepath.Join(c.DataDir, "kafka"), Addr: c.Kafka.EmbeddedAddr, Log: log, SASL: embeddedSASL(c.Kafka.SASL)})
		if err != nil {
			return fmt.Errorf("start embedded broker: %w", err)
		}
		onExit(b.Close)
		brokers = b.Addrs()
		log.Info("embedded Kafka broker", "addrs", brokers, "data", filepath.Join(c.DataDir, "kafka"))
	}

	// The clients made here: the brokers, their security and tracing.
	clientOpts := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, kopts...)
	cl, err := kgo.NewClient(clientOpts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	onExit(cl.Close)
	if err := pipeline.EnsureTopics(ctx, kadm.NewClient(cl), c.Kafka.Partitions, topology.Topics...); err != nil {
		if m := c.Kafka.SASL.Mechanism; m != "" && m != "none" {
			// A broker refusing the credentials may just close the
			// connection (EOF), which alone would not say why.
			return fmt.Errorf("create topics on %v with SASL %s as user %q (check kafka.sasl.*): %w", brokers, m, c.Kafka.SASL.Username, err)
		}
		return fmt.Errorf("create topics on %v: %w", brokers, err)
	}

	regURL := c.Reg.URL
	if regURL == "" {
		reg, err := registry.New(ctx, registry.Config{Brokers: brokers, ClientOpts: kopts}, log)
		if err != nil {
			return fmt.Errorf("embedded schema registry: %w", err)
		}
		onExit(reg.Close)
		url, stop, err := serve(c.Reg.EmbeddedAddr, reg.Handler(), log)
		if err != nil {
			return fmt.Errorf("embedded schema registry: %w", err)
		}
		onExit(stop)
		regURL = url
		log.Info("embedded schema registry", "url", regURL)
	}
	srcl, err := sr.NewClient(sr.URLs(regURL))
	if err != nil {
		return fmt.Errorf("schema registry client: %w", err)
	}
	codec := schemas.NewCodec(srcl)
	// Uploads and e-mails enter through one publisher.
	pub, err := pipeline.NewPublisher(codec, topology.Version, clientOpts...)
	if err != nil {
		return err
	}
	onExit(pub.Close)

	blobs, err := blob.Open(ctx, c.BlobURL())
	if err != nil {
		return fmt.Errorf("blob store: %w", err)
	}

	runs := func(stage string) bool { return len(c.Stages) == 0 || slices.Contains(c.Stages, stage) }
	// The database holds results (persist), serves the API, and caches
	// LLM answers for analyze.
	var store *persist.Store
	if c.HTTP.Addr != "" || runs("persist") || (c.LLM.Cache && (runs("analyze") && c.Analyze.Provider != "rules" || runs("classify") && c.Classify.Provider != "rules")) || len(c.IMAP.MailboxList()) > 0 {
		dsn := c.PG.DSN
		if dsn == "" {
			pg, err := pgserver.Start(ctx, pgserver.Config{Dir: filepath.Join(c.DataDir, "postgres"), Log: log})
			if err != nil {
				return fmt.Errorf("private PostgreSQL: %w", err)
			}
			onExit(func() {
				stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := pg.Stop(stopCtx); err != nil {
					log.Error("stop private PostgreSQL", "err", err)
				}
			})
			dsn = pg.DSN()
		}
		if store, err = persist.Open(ctx, dsn); err != nil {
			return fmt.Errorf("open database: %w", err)
		}
		onExit(store.Close)
	}

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	stages, err := topology.Stages(topology.Deps{Config: c, Blobs: blobs, Store: store, Registerer: metrics, Log: log}, c.Stages)
	if err != nil {
		return err
	}
	instance := c.Stage.InstanceID
	if instance == "" && c.Embedded() {
		// The embedded broker's data dir can belong to one process only,
		// so its name is stable by construction.
		instance = "embedded"
	}
	rt := pipeline.New(pipeline.Config{
		Brokers:         brokers,
		ClientOpts:      kopts,
		TracerProvider:  tp,
		DeadLetterTopic: topology.DeadLetter,
		BadRecord:       schemas.ErrBadRecord,
		Retry:           pipeline.Retry{Attempts: c.Stage.RetryAttempts, Initial: c.Stage.RetryInitial, Max: c.Stage.RetryMax},
		InstanceID:      instance,
		StableInstance:  instance != "",
	}, codec, blobs, log, metrics)

	metrics.MustRegister(pipeline.NewLagCollector(kadm.NewClient(cl), stageNames(stages)...))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rt.Run(gctx, stages...) })
	if len(c.IMAP.MailboxList()) > 0 {
		// The inbox connector, when mailboxes are configured.
		g.Go(func() error { return newInboxConnector(c, pub, blobs, store, log).Run(gctx) })
	}

	ready := map[string]func(context.Context) error{
		"kafka": func(ctx context.Context) error { return cl.Ping(ctx) },
		"blob":  blobs.Ping,
		"schema_registry": func(ctx context.Context) error {
			_, err := srcl.Subjects(ctx)
			return err
		},
	}
	if store != nil {
		ready["postgres"] = store.Ping
	}
	ops := httpapi.Ops{Metrics: promhttp.HandlerFor(metrics, promhttp.HandlerOpts{Registry: metrics}), Ready: ready, Profile: c.HTTP.Pprof}
	if c.HTTP.OpsAddr != "" {
		url, stop, err := serve(c.HTTP.OpsAddr, ops.Handler(), log)
		if err != nil {
			return fmt.Errorf("ops endpoint: %w", err)
		}
		defer stop()
		log.Info("ops endpoint (healthz, readyz, metrics)", "url", url)
	}

	if c.HTTP.Addr != "" {
		api := &httpapi.Server{
			Ingest: &ingest.Ingester{
				Blobs:    blobs,
				MaxBytes: c.Ingest.MaxBytes,
				Publish: func(ctx context.Context, ev events.DocumentReceived) error {
					return pub.Publish(ctx, topology.DocumentReceived, "ingest", &ev)
				},
			},
			Store: store,
			Blobs: blobs,
			Ops:   ops,
			Auth: &httpapi.Auth{
				Keys:      httpapi.NewKeyStore(store.Pool()),
				Required:  httpapi.AuthRequired(c.HTTP.Addr, c.Auth.Required),
				PerSecond: c.Auth.RatePerSecond,
				Burst:     c.Auth.Burst,
			},
			Log: log,
		}
		if api.Chat, err = chat.Open(ctx, c.ChatProvider(), c.LLM, store.Pool(), metrics, log); err != nil {
			return err
		}
		handler := api.Handler()
		if c.Console.Enabled {
			h, closeConsole, err := reviewerConsole(c, api, cl, codec, blobs, store, metrics, g, gctx, log)
			if err != nil {
				return err
			}
			defer closeConsole()
			handler = h
		}
		if c.OTel.Endpoint != "" {
			handler = traced(tp, handler)
		}
		url, stop, err := serve(c.HTTP.Addr, handler, log)
		if err != nil {
			return fmt.Errorf("HTTP API: %w", err)
		}
		defer stop()
		log.Info("HTTP API", "url", url)
	}

	log.Info("prismflow running", "stages", stageNames(stages), "brokers", brokers)
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("prismflow stopped")
	return nil
}

// reviewerConsole returns the HTTP handler of the API with the reviewer
// console at /: the console shares the API's store, key store, tenant
// rules and upload, download and chat code. Its live-update hub runs in
// g; closeConsole stops the statistics consumer.
func reviewerConsole(c config.Config, api *httpapi.Server, cl *kgo.Client, codec *schemas.Codec, blobs blob.Store,
	store *persist.Store, metrics *prometheus.Registry, g *errgroup.Group, gctx context.Context, log *slog.Logger,
) (h http.Handler, closeConsole func(), err error) {
	categories := render.DefaultTaxonomy()
	if c.Classify.Taxonomy != "" {
		data, err := os.ReadFile(c.Classify.Taxonomy)
		if err != nil {
			return nil, nil, fmt.Errorf("console: read taxonomy: %w", err)
		}
		tf, err := classify.ParseTaxonomy(data)
		if err != nil {
			return nil, nil, fmt.Errorf("console: taxonomy %s: %w", c.Classify.Taxonomy, err)
		}
		categories = categories[:0]
		for _, cat := range tf.Categories {
			categories = append(categories, cat.Name)
		}
	}
	renderer, err := pages.NewRenderer(blobs, c.PageCacheDir(), c.Console.PageCacheBytes, log)
	if err != nil {
		return nil, nil, fmt.Errorf("console: page images: %w", err)
	}
	hub := live.NewHub(cl, codec, nil, log, live.WithStatusLookup(func(ctx context.Context, tenant, id string) (string, error) {
		d, err := store.Summary(ctx, tenant, id)
		return d.Status, err
	}))
	g.Go(func() error { return hub.Run(gctx) })
	collector := stats.New(cl, metrics, stats.WithLogger(log))
	// A document is reprocessed from a transform stage's input; ingest
	// (attachments) and persist (every topic) would not make a new run.
	var reprocess []string
	for _, n := range topology.Names {
		if n != "ingest" && n != "persist" {
			reprocess = append(reprocess, n)
		}
	}
	srv := &console.Server{
		Store:        store,
		API:          api,
		Keys:         api.Auth.Keys,
		AuthRequired: api.Auth.Required,
		SessionTTL:   c.Console.SessionTTL,
		Categories:   categories,
		Stages:       reprocess,
		Pages:        renderer,
		Live:         hub,
		Operator:     console.KafkaOperator{Client: cl, Codec: codec},
		Stats:        collector.Collect,
		Log:          log,
	}
	ch, err := srv.Handler()
	if err != nil {
		collector.Close()
		return nil, nil, err
	}
	apiH := api.Handler()
	mux := http.NewServeMux()
	mux.Handle("/", ch)
	for _, p := range []string{"/v1/", "/healthz", "/readyz", "/metrics", "/debug/pprof/"} {
		mux.Handle(p, apiH)
	}
	log.Info("reviewer console", "path", "/", "auth_required", srv.AuthRequired)
	return mux, collector.Close, nil
}

// serve listens on addr and serves h in the background. stop shuts the
// server down gracefully, waiting for requests in flight.
func serve(addr string, h http.Handler, log *slog.Logger) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server", "addr", addr, "err", err)
		}
	}()
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// traced starts a server span per HTTP request, so that an upload's
// trace begins with the request and continues through the Kafka records
// (the publisher stamps the span's traceparent) to persist. The span is
// named by method alone: paths carry document ids, which would make
// span names unbounded.
func traced(tp trace.TracerProvider, h http.Handler) http.Handler {
	tr := tp.Tracer("prismflow/http")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tr.Start(r.Context(), "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// embeddedSASL makes the embedded broker require the SASL user the
// clients are configured with, so kafka.sasl.* can be tried locally.
// kafka.tls.* is not applied to the embedded broker: it would need a
// server certificate, which a local trial has no use for.
func embeddedSASL(s config.SASL) broker.SASL {
	if m := strings.ToLower(s.Mechanism); m == "" || m == "none" {
		return broker.SASL{}
	}
	return broker.SASL{Mechanism: s.Mechanism, User: s.Username, Password: s.Password.Reveal()}
}

func stageNames(ss []pipeline.Stage) []string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.Name
	}
	return names
}
