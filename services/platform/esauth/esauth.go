// Package esauth holds how every service authenticates to Elasticsearch (an API key or basic
// auth) and verifies it (TLS with a CA bundle), from the same flags everywhere (-es.api-key,
// -es.username, -es.password, -es.tls.*), and turns them into an http.RoundTripper that adds
// the Authorization header to each request. predlog, the trainer and mlopsctl use it.
package esauth

import (
	"errors"
	"flag"
	"net/http"

	"github.com/streaming-mlops/mlops/services/platform/flagenv"
	"github.com/streaming-mlops/mlops/services/platform/tlsconf"
)

// Config is the Elasticsearch client security. The zero value is no authentication, with TLS
// (system roots) only when the URL is https.
type Config struct {
	// APIKey is an Elasticsearch API key in the encoded form the create-API-key call returns
	// (base64 of "id:key"), sent as "Authorization: ApiKey <key>" (-es.api-key, ES_API_KEY,
	// or -es.api-key-file). Never logged.
	APIKey flagenv.Secret
	// Username and Password authenticate with basic auth when set (-es.username,
	// ES_USERNAME; -es.password, ES_PASSWORD or -es.password-file). Not with APIKey.
	Username string
	Password flagenv.Secret
	// TLS verifies an https Elasticsearch with a CA bundle (-es.tls.ca) and presents a client
	// certificate when it asks for one (-es.tls.cert/-es.tls.key).
	TLS tlsconf.Client
}

// RegisterFlags registers -es.api-key, -es.username, -es.password and -es.tls.* (with their
// environment variables ES_API_KEY, ES_USERNAME, ES_PASSWORD, ES_TLS_*; the secrets also as
// -…-file and …_FILE).
func (c *Config) RegisterFlags(fs *flag.FlagSet, getenv func(string) string) {
	flagenv.SecretVar(fs, getenv, &c.APIKey, "es.api-key", "ES_API_KEY", "Elasticsearch API key (encoded id:key)")
	flagenv.StringVar(fs, getenv, &c.Username, "es.username", "ES_USERNAME", c.Username, "Elasticsearch basic-auth user")
	flagenv.SecretVar(fs, getenv, &c.Password, "es.password", "ES_PASSWORD", "Elasticsearch basic-auth password")
	c.TLS.RegisterFlags(fs, getenv, "es.tls", "ES_TLS")
}

// Validate reports inconsistent settings (it reads no file).
func (c Config) Validate() error {
	var errs []error
	if c.APIKey.IsSet() && (c.Username != "" || c.Password.IsSet()) {
		errs = append(errs, errors.New("elasticsearch: give an API key or a username and password, not both"))
	}
	if (c.Username == "") != !c.Password.IsSet() {
		errs = append(errs, errors.New("elasticsearch: username and password go together"))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Transport returns base (which it changes: its TLS configuration is set from c.TLS) wrapped
// so that every request carries c's credentials. base must not be shared with other
// configurations.
func (c Config) Transport(base *http.Transport) (http.RoundTripper, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	tc, err := c.TLS.Load()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		base.TLSClientConfig = tc
	}
	if !c.APIKey.IsSet() && c.Username == "" {
		return base, nil
	}
	return &authTransport{base: base, cfg: c}, nil
}

// Client returns an HTTP client with c's credentials and TLS on a fresh transport (for
// readiness checks and occasional requests).
func (c Config) Client() (*http.Client, error) {
	rt, err := c.Transport(http.DefaultTransport.(*http.Transport).Clone())
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt}, nil
}

// authTransport adds the Authorization header.
type authTransport struct {
	base http.RoundTripper
	cfg  Config
}

func (a *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A RoundTripper must not modify the request it was given.
	r := req.Clone(req.Context())
	if a.cfg.APIKey.IsSet() {
		r.Header.Set("Authorization", "ApiKey "+a.cfg.APIKey.Reveal())
	} else {
		r.SetBasicAuth(a.cfg.Username, a.cfg.Password.Reveal())
	}
	return a.base.RoundTrip(r)
}

// CloseIdleConnections closes the idle connections of the wrapped transport.
func (a *authTransport) CloseIdleConnections() {
	if c, ok := a.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
