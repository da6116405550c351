package testenv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// DovecotOptions choose what Dovecot serves.
type DovecotOptions struct {
	// TLS adds an implicit-TLS listener (DovecotServer.TLSAddr) and
	// STARTTLS on the plain one, with a throwaway self-signed certificate.
	TLS bool
}

// DovecotServer is a running Dovecot with one test user.
type DovecotServer struct {
	Addr     string // plain IMAP (STARTTLS when TLS is on)
	TLSAddr  string // implicit TLS; empty unless TLS is on
	User     string
	Password string
	// RootCAs trusts the server's certificate (nil unless TLS is on).
	RootCAs *x509.CertPool
	// Log is Dovecot's log file, for failing tests to show.
	Log string
}

// Dovecot starts a private Dovecot IMAP server (Debian package
// dovecot-imapd) on free loopback ports, with a throwaway configuration
// and maildir storage in a temporary folder and one user in a
// passwd-file; it never touches the system's Dovecot or its users. The
// server is stopped when the test ends.
func Dovecot(t testing.TB, opts DovecotOptions) *DovecotServer {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		t.Fatalf("testenv: dovecot not found: install the Debian package dovecot-imapd (apt-get install -y dovecot-imapd)")
	}

	// Not t.TempDir: Dovecot's unprivileged processes must be able to
	// reach the folder, and t.TempDir's parents are private to us.
	dir, err := os.MkdirTemp("", "prismflow-dovecot-")
	if err != nil {
		t.Fatalf("testenv: dovecot dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	// As root, Dovecot drops privileges to existing system users; as
	// anyone else it runs everything as that user.
	loginUser, mailUID, mailGID := "dovecot", "", ""
	cur, err := user.Current()
	if err != nil {
		t.Fatalf("testenv: current user: %v", err)
	}
	if cur.Uid != "0" {
		loginUser, mailUID, mailGID = cur.Username, cur.Uid, cur.Gid
	} else {
		u, err := user.Lookup("dovecot")
		if err != nil {
			t.Fatalf("testenv: user dovecot missing: install the Debian package dovecot-imapd (%v)", err)
		}
		mailUID, mailGID = u.Uid, u.Gid
	}
	mail := filepath.Join(dir, "mail")
	if err := os.MkdirAll(mail, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if cur.Uid == "0" {
		uid, _ := strconv.Atoi(mailUID)
		gid, _ := strconv.Atoi(mailGID)
		if err := os.Chown(mail, uid, gid); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}

	s := &DovecotServer{User: "broker", Password: "test-" + randomHex(6), Log: filepath.Join(dir, "dovecot.log")}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(s.User+":{PLAIN}"+s.Password+"::::::\n"), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	port := freePort(t)
	ssl := "ssl = no\n"
	listeners := fmt.Sprintf("  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n", port)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if opts.TLS {
		certFile, keyFile, pool := selfSigned(t, dir)
		s.RootCAs = pool
		tlsPort := freePort(t)
		s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
		ssl = fmt.Sprintf("ssl = yes\nssl_cert = <%s\nssl_key = <%s\n", certFile, keyFile)
		listeners = fmt.Sprintf("  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }\n  inet_listener imaps {\n    address = 127.0.0.1\n    port = %d\n    ssl = yes\n  }\n", port, tlsPort)
	}
	conf := fmt.Sprintf(`# throwaway configuration written by prismflow/pipeline/testenv
protocols = imap
listen = 127.0.0.1
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = prismflow-test-%[2]d
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
default_login_user = %[3]s
default_internal_user = %[3]s
first_valid_uid = 1
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:%[1]s/mail/%%u
%[4]s
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = static
  args = uid=%[5]s gid=%[6]s home=%[1]s/mail/%%u
}
service imap-login {
%[7]s}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
`, dir, port, loginUser, ssl, mailUID, mailGID, listeners)
	confFile := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	cmd := exec.Command(bin, "-F", "-c", confFile)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that cleanup stops its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start dovecot: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(s.Log)
			t.Fatalf("testenv: dovecot exited: %v\n%s\n%s", err, out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(s.Log)
			t.Fatalf("testenv: dovecot did not listen on %s within 20s\n%s\n%s", s.Addr, out.String(), log)
		}
		time.Sleep(50 * time.Millisecond) // polling a port, with a deadline
	}
	return s
}

// Client logs in to the plain listener as the test user.
func (s *DovecotServer) Client(t testing.TB) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		t.Fatalf("testenv: dial dovecot: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(s.User, s.Password).Wait(); err != nil {
		t.Fatalf("testenv: login to dovecot: %v", err)
	}
	return c
}

// Append delivers raw RFC 5322 messages to mailbox (created if missing)
// with IMAP APPEND, as a mail server would deliver them.
func (s *DovecotServer) Append(t testing.TB, mailbox string, messages ...[]byte) {
	t.Helper()
	c := s.Client(t)
	defer c.Logout()
	if mailbox != "INBOX" {
		_ = c.Create(mailbox, nil).Wait() // may exist already
	}
	for i, m := range messages {
		cmd := c.Append(mailbox, int64(len(m)), nil)
		if _, err := cmd.Write(m); err != nil {
			t.Fatalf("testenv: append message %d: %v", i, err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatalf("testenv: append message %d: %v", i, err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("testenv: append message %d: %v", i, err)
		}
	}
}

// Flags returns the flags of every message in mailbox by UID; a mailbox
// that does not exist (yet) has none.
func (s *DovecotServer) Flags(t testing.TB, mailbox string) map[goimap.UID][]goimap.Flag {
	t.Helper()
	c := s.Client(t)
	defer c.Logout()
	list, err := c.List("", mailbox, nil).Collect()
	if err != nil {
		t.Fatalf("testenv: list %s: %v", mailbox, err)
	}
	if len(list) == 0 {
		return map[goimap.UID][]goimap.Flag{}
	}
	sel, err := c.Select(mailbox, &goimap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("testenv: select %s: %v", mailbox, err)
	}
	out := map[goimap.UID][]goimap.Flag{}
	if sel.NumMessages == 0 {
		return out
	}
	var all goimap.SeqSet
	all.AddRange(1, 0) // 1:*
	msgs, err := c.Fetch(all, &goimap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatalf("testenv: fetch flags: %v", err)
	}
	for _, m := range msgs {
		out[m.UID] = m.Flags
	}
	return out
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// selfSigned writes a certificate for 127.0.0.1 and localhost and its key
// into dir, and returns a pool that trusts it.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "prismflow test dovecot"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testenv: certificate: %v", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("testenv: key: %v", err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// Dovecot reads the key as root before dropping privileges.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TLSConfig trusts the server's certificate.
func (s *DovecotServer) TLSConfig() *tls.Config { return &tls.Config{RootCAs: s.RootCAs} }
