package pipeline

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// instrumentation names prismflow's own spans.
const instrumentation = "prismflow/pipeline"

// Tracing returns the tracer provider of the process: OTLP over HTTP to
// endpoint (e.g. http://collector:4318, where /v1/traces is added), or, with no endpoint, a no-op
// provider whose spans cost nothing. shutdown flushes the spans still
// buffered; call it once at exit.
//
// The provider is returned, never installed globally: every component
// that traces receives it, so tests can give each runtime its own.
func Tracing(ctx context.Context, endpoint, service string) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	if endpoint == "" {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("otel endpoint %q: want an http(s)://host:port URL", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		// The OTLP/HTTP traces path; the exporter would post to "/".
		u.Path = "/v1/traces"
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()))
	if err != nil {
		return nil, nil, fmt.Errorf("otel exporter %s: %w", endpoint, err)
	}
	p := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service))),
	)
	return p, p.Shutdown, nil
}

// KafkaTracing is the client option that gives a Kafka client franz-go's
// kotel produce and consume spans. The propagator is empty on purpose:
// the runtime owns the traceparent header (it continues the record's
// trace from its own handling span), and kotel injecting a second one
// would make records carry two.
func KafkaTracing(tp trace.TracerProvider) kgo.Opt {
	k := kotel.NewKotel(kotel.WithTracer(kotel.NewTracer(
		kotel.TracerProvider(tp),
		kotel.TracerPropagator(propagation.NewCompositeTextMapPropagator()),
	)))
	return kgo.WithHooks(k.Hooks()...)
}

// parentOf is the remote span context of rec's traceparent header, which
// is invalid when the record has none.
func parentOf(rec *kgo.Record) trace.SpanContext {
	var tp string
	for _, h := range rec.Headers {
		if h.Key == traceparentHeader {
			tp = string(h.Value)
		}
	}
	if !validTraceparent(tp) {
		return trace.SpanContext{}
	}
	var cfg trace.SpanContextConfig
	tid, _ := hex.DecodeString(tp[3:35])
	sid, _ := hex.DecodeString(tp[36:52])
	flags, _ := hex.DecodeString(tp[53:55])
	copy(cfg.TraceID[:], tid)
	copy(cfg.SpanID[:], sid)
	cfg.TraceFlags = trace.TraceFlags(flags[0])
	cfg.Remote = true
	return trace.NewSpanContext(cfg)
}

// startSpan starts the span of one handled record, a child of the trace
// the record carries.
func (s *stageRunner) startSpan(ctx context.Context, rec *kgo.Record) (context.Context, trace.Span) {
	if p := parentOf(rec); p.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, p)
	}
	return s.tracer.Start(ctx, s.st.Name+" process",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("prismflow.stage", s.st.Name),
			attribute.String("messaging.destination.name", rec.Topic),
			attribute.Int("messaging.destination.partition.id", int(rec.Partition)),
			attribute.Int64("messaging.kafka.offset", rec.Offset),
			attribute.String("messaging.kafka.message.key", string(rec.Key)),
		))
}

// endSpan records how handling ended.
func endSpan(span trace.Span, o outcome) {
	switch {
	case o.stop != nil:
		span.SetStatus(codes.Error, o.stop.Error())
	case o.dead:
		span.SetStatus(codes.Error, "dead-lettered")
	}
	span.End()
}

// spanTraceparent is the W3C traceparent of the span in ctx, or "" when
// ctx has no valid span (a no-op provider with no parent).
func spanTraceparent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}
