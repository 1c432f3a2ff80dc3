// Package tlsconf turns certificate and key files named in the configuration into *tls.Config
// values, for servers (gRPC listeners, optionally requiring client certificates: mTLS) and
// for clients (gRPC, Kafka, Elasticsearch, Redis). Files are PEM. Flags are registered under a
// prefix so every component spells them the same (-grpc.tls.cert, -kafka.tls.ca, ...).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
)

// MinVersion is the oldest TLS version spoken, by servers and clients.
const MinVersion = tls.VersionTLS12

// Server is the TLS configuration of a listener. With neither CertFile nor KeyFile set the
// listener speaks plain text.
type Server struct {
	// CertFile and KeyFile are the server's certificate chain and private key (PEM); both or
	// neither.
	CertFile string
	KeyFile  string
	// ClientCAFile, when set, turns on mutual TLS: a client must present a certificate that
	// chains to one of these CAs (PEM bundle), or the handshake fails.
	ClientCAFile string
}

// RegisterFlags registers -<prefix>.cert, -<prefix>.key and -<prefix>.client-ca, falling back
// to <ENV>_CERT, <ENV>_KEY and <ENV>_CLIENT_CA (prefix "grpc.tls", env "GRPC_TLS").
func (s *Server) RegisterFlags(fs *flag.FlagSet, getenv func(string) string, prefix, env string) {
	flagenv.StringVar(fs, getenv, &s.CertFile, prefix+".cert", env+"_CERT", s.CertFile, "TLS certificate chain file (PEM); with -"+prefix+".key turns TLS on")
	flagenv.StringVar(fs, getenv, &s.KeyFile, prefix+".key", env+"_KEY", s.KeyFile, "TLS private key file (PEM)")
	flagenv.StringVar(fs, getenv, &s.ClientCAFile, prefix+".client-ca", env+"_CLIENT_CA", s.ClientCAFile, "CA bundle (PEM) client certificates must chain to; set: mutual TLS, clients without a valid certificate are refused")
}

// Enabled reports whether the listener speaks TLS.
func (s Server) Enabled() bool { return s.CertFile != "" || s.KeyFile != "" }

// MutualTLS reports whether clients must present a certificate.
func (s Server) MutualTLS() bool { return s.ClientCAFile != "" }

// Validate reports inconsistent settings (it reads no file).
func (s Server) Validate() error {
	var errs []error
	if (s.CertFile == "") != (s.KeyFile == "") {
		errs = append(errs, errors.New("tls: certificate and key files go together (set both or neither)"))
	}
	if s.ClientCAFile != "" && !s.Enabled() {
		errs = append(errs, errors.New("tls: a client CA (mutual TLS) needs the server's certificate and key"))
	}
	return errors.Join(errs...)
}

// Load reads the files and returns the listener's TLS configuration, or nil when TLS is off.
func (s Server) Load() (*tls.Config, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if !s.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load tls key pair %s, %s: %w", s.CertFile, s.KeyFile, err)
	}
	cfg := &tls.Config{MinVersion: MinVersion, Certificates: []tls.Certificate{cert}}
	if s.ClientCAFile != "" {
		pool, err := loadPool(s.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Client is the TLS configuration of a client.
type Client struct {
	// Enabled turns TLS on with the system's root CAs; setting CAFile or CertFile turns it on
	// too.
	Enabled bool
	// CAFile is a CA bundle (PEM) to trust instead of the system roots.
	CAFile string
	// CertFile and KeyFile are the client's certificate and key (PEM) for servers that
	// require one (mutual TLS); both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the host name the server's certificate is checked against.
	// Default: the host of the address dialled.
	ServerName string
}

// RegisterFlags registers -<prefix> (bool), -<prefix>.ca, -<prefix>.cert, -<prefix>.key and
// -<prefix>.server-name, falling back to <ENV>, <ENV>_CA, <ENV>_CERT, <ENV>_KEY and
// <ENV>_SERVER_NAME (prefix "kafka.tls", env "KAFKA_TLS").
func (c *Client) RegisterFlags(fs *flag.FlagSet, getenv func(string) string, prefix, env string) {
	flagenv.BoolVar(fs, getenv, &c.Enabled, prefix, env, c.Enabled, "connect with TLS (implied by -"+prefix+".ca and -"+prefix+".cert)")
	flagenv.StringVar(fs, getenv, &c.CAFile, prefix+".ca", env+"_CA", c.CAFile, "CA bundle (PEM) to verify the server with instead of the system roots")
	flagenv.StringVar(fs, getenv, &c.CertFile, prefix+".cert", env+"_CERT", c.CertFile, "client certificate (PEM) for servers requiring mutual TLS")
	flagenv.StringVar(fs, getenv, &c.KeyFile, prefix+".key", env+"_KEY", c.KeyFile, "client private key (PEM)")
	flagenv.StringVar(fs, getenv, &c.ServerName, prefix+".server-name", env+"_SERVER_NAME", c.ServerName, "name the server certificate must carry (default: the host dialled)")
}

// On reports whether the client speaks TLS.
func (c Client) On() bool { return c.Enabled || c.CAFile != "" || c.CertFile != "" }

// Validate reports inconsistent settings (it reads no file).
func (c Client) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls: client certificate and key files go together (set both or neither)")
	}
	return nil
}

// Load reads the files and returns the client's TLS configuration, or nil when TLS is off.
func (c Client) Load() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.On() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: MinVersion, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load tls client key pair %s, %s: %w", c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ca bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ca bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}
