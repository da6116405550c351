// Package broker runs prismflow's embedded Kafka broker: franz-go's kfake
// in process, persisting to a data directory and listening on a TCP
// address so that outside clients (kcat, a second prismflow process) can
// use it like any Kafka.
//
// It exists so that prismflow runs as one binary with no infrastructure:
// the same runtime code, the same transactions and consumer groups, and
// the same wire protocol as against a real cluster, which remains the
// choice for production (set the brokers and the embedded one is not
// started).
//
// Durability: topics, records, committed offsets, transactional producer
// state and groups are written to DataDir as they change; stopping (Close)
// and starting again on the same directory resumes where it left off.
// Every write is fsynced (kfake.SyncWrites): the broker is the only copy of
// the pipeline's state, and a record acknowledged to a producer must not
// vanish when the machine loses power. A plain kill -9 would lose nothing
// even without fsync (the data is in the OS page cache), but a power cut
// or kernel crash would lose the unsynced tail, and kfake otherwise syncs
// only on segment roll and shutdown. Measured here (virtio disk, 20 KiB
// records produced one at a time): about 0.8 ms per record with fsync
// against 0.2 ms without, which is noise next to extracting a PDF, so we
// pay it. TestKillKeepsAcknowledgedWrites checks recovery after kill -9.
//
// Security: with Config.SASL set, the broker requires SASL (PLAIN or
// SCRAM) and knows exactly that one user, so that a deployment's SASL
// settings can be tried on one machine before they meet a real cluster.
// The broker speaks plaintext: TLS belongs to real clusters.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config says where the broker keeps its data and listens.
type Config struct {
	// DataDir holds the broker's log and state. Required.
	DataDir string
	// Addr is the host:port to listen on. Default localhost:9092; port 0
	// picks a free port (see Broker.Addrs).
	Addr string
	// AdvertisedHost is the host clients are told to connect to. Default
	// the host of Addr, or localhost if Addr's host is empty or a
	// wildcard (0.0.0.0, ::).
	AdvertisedHost string
	// Partitions of topics created without a count. Default 6.
	Partitions int32
	// Log receives the broker's warnings and errors; nil discards them.
	Log *slog.Logger
	// SASL, when its Mechanism is set, makes the broker require SASL
	// with that one user as superuser, so that a SASL setup can be tried
	// locally before it meets a real cluster. Mechanism: PLAIN,
	// SCRAM-SHA-256 or SCRAM-SHA-512 (case-insensitive).
	SASL SASL
}

// SASL is the one user the embedded broker accepts.
type SASL struct {
	Mechanism string
	User      string
	// Password is never logged (Config is not logged either).
	Password string
}

// Broker is a running embedded broker.
type Broker struct {
	c     *kfake.Cluster
	addrs []string
}

// Start starts a broker on cfg.DataDir, loading what a previous run left
// there. It returns once the broker accepts connections. ctx bounds only
// the start; the broker runs until Close.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("broker: no data dir")
	}
	if cfg.Addr == "" {
		cfg.Addr = "localhost:9092"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("broker: addr %q: %w", cfg.Addr, err)
	}
	if cfg.AdvertisedHost == "" {
		cfg.AdvertisedHost = host
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			cfg.AdvertisedHost = "localhost"
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("broker: data dir: %w", err)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("prismflow"),
		kfake.DataDir(cfg.DataDir),
		kfake.SyncWrites(),
		kfake.DefaultNumPartitions(int(cfg.Partitions)),
		kfake.WithLogger(logger{cfg.Log}),
		// kfake always binds 127.0.0.1:<port> and advertises what the
		// listener reports; we bind the configured address instead and
		// report the advertised host, so metadata sends clients back to
		// an address they can reach.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, cfg.Addr)
			if err != nil {
				return nil, err
			}
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			return advertised{ln, addr{network, net.JoinHostPort(cfg.AdvertisedHost, port)}}, nil
		}),
	}
	if cfg.SASL.Mechanism != "" {
		mech := strings.ToUpper(cfg.SASL.Mechanism)
		switch mech {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return nil, fmt.Errorf("broker: sasl mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", cfg.SASL.Mechanism)
		}
		if cfg.SASL.User == "" {
			return nil, fmt.Errorf("broker: sasl %s: no user", mech)
		}
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser(mech, cfg.SASL.User, cfg.SASL.Password))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: start on %s: %w", cfg.Addr, err)
	}
	b := &Broker{c: c, addrs: c.ListenAddrs()}
	cfg.Log.Info("embedded kafka broker started", "addrs", b.addrs, "data_dir", cfg.DataDir, "sasl", strings.ToUpper(cfg.SASL.Mechanism))
	return b, nil
}

// Addrs are the host:port seeds for clients.
func (b *Broker) Addrs() []string { return b.addrs }

// Close stops accepting connections, writes the broker's state to disk
// and stops. It is safe to call more than once.
func (b *Broker) Close() { b.c.Close() }

// advertised is a listener that reports the address clients should use.
type advertised struct {
	net.Listener
	a addr
}

func (l advertised) Addr() net.Addr { return l.a }

type addr struct{ network, hostport string }

func (a addr) Network() string { return a.network }
func (a addr) String() string  { return a.hostport }

// logger hands kfake's logs to slog.
type logger struct{ l *slog.Logger }

func (l logger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
		// kfake warns when a commit takes over 5 ms, which every synced
		// commit does on ordinary disks: a diagnostic for kfake's own
		// developers, not something an operator can act on.
		if strings.HasPrefix(format, "txn: EndTxn slow") {
			lvl = slog.LevelDebug
		}
	case kfake.LogLevelInfo:
		lvl = slog.LevelInfo
	default:
		lvl = slog.LevelDebug
	}
	if l.l.Enabled(context.Background(), lvl) {
		l.l.Log(context.Background(), lvl, fmt.Sprintf(format, args...), "component", "kfake")
	}
}
