package kafkaio

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASL mechanisms of Config.SASLMechanism.
const (
	SASLNone        = ""
	SASLScramSHA512 = "SCRAM-SHA-512"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLPlain       = "PLAIN"
)

// dialTimeout bounds connecting to a broker (TCP, TLS handshake, SASL exchange).
const dialTimeout = 10 * time.Second

// validateSecurity reports inconsistent security settings. It reads the TLS files, so a
// missing or malformed certificate fails at startup rather than at the first dial.
func (c Config) validateSecurity() error {
	var errs []error
	switch strings.ToUpper(c.SASLMechanism) {
	case SASLNone:
		if c.SASLUsername != "" || c.SASLPassword.IsSet() {
			errs = append(errs, errors.New("kafka sasl username or password given without -kafka.sasl.mechanism"))
		}
	case SASLScramSHA512, SASLScramSHA256, SASLPlain:
		if c.SASLUsername == "" || !c.SASLPassword.IsSet() {
			errs = append(errs, fmt.Errorf("kafka sasl %s needs a username and a password", c.SASLMechanism))
		}
		if strings.EqualFold(c.SASLMechanism, SASLPlain) && !c.TLS.On() {
			errs = append(errs, errors.New("kafka sasl PLAIN sends the password in clear text: turn on -kafka.tls"))
		}
	default:
		errs = append(errs, fmt.Errorf("kafka sasl mechanism %q: want %s, %s or %s", c.SASLMechanism, SASLScramSHA512, SASLScramSHA256, SASLPlain))
	}
	if _, err := c.TLS.Load(); err != nil {
		errs = append(errs, fmt.Errorf("kafka %w", err))
	}
	return errors.Join(errs...)
}

// security returns the TLS configuration (nil: plain text) and SASL mechanism (nil: none)
// of c.
func (c Config) security() (*tls.Config, sasl.Mechanism, error) {
	tc, err := c.TLS.Load()
	if err != nil {
		return nil, nil, fmt.Errorf("kafka %w", err)
	}
	var m sasl.Mechanism
	switch strings.ToUpper(c.SASLMechanism) {
	case SASLNone:
	case SASLScramSHA512:
		m, err = scram.Mechanism(scram.SHA512, c.SASLUsername, c.SASLPassword.Reveal())
	case SASLScramSHA256:
		m, err = scram.Mechanism(scram.SHA256, c.SASLUsername, c.SASLPassword.Reveal())
	case SASLPlain:
		m = plain.Mechanism{Username: c.SASLUsername, Password: c.SASLPassword.Reveal()}
	default:
		err = fmt.Errorf("kafka sasl mechanism %q: want %s, %s or %s", c.SASLMechanism, SASLScramSHA512, SASLScramSHA256, SASLPlain)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kafka sasl: %w", err)
	}
	return tc, m, nil
}

// Dialer returns a kafka-go dialer (for readers and single connections) with c's client id,
// TLS and SASL settings.
func (c Config) Dialer() (*kafka.Dialer, error) {
	tc, m, err := c.withDefaults().security()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{ClientID: c.withDefaults().ClientID, Timeout: dialTimeout, DualStack: true, TLS: tc, SASLMechanism: m}, nil
}

// Transport returns a kafka-go transport (for writers and kafka.Client requests) with c's
// client id, TLS and SASL settings. The caller owns it: call CloseIdleConnections when done.
func (c Config) Transport() (*kafka.Transport, error) {
	tc, m, err := c.withDefaults().security()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{ClientID: c.withDefaults().ClientID, DialTimeout: dialTimeout, TLS: tc, SASL: m}, nil
}

// failingTLS is a TLS configuration whose every handshake fails with err: what dialer and
// transport get when the security settings, valid at startup, cannot be loaded any more
// (a certificate file removed since), so the failure is reported by every dial instead of
// silently falling back to plain text.
func failingTLS(err error) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, VerifyConnection: func(tls.ConnectionState) error { return err }}
}

// mustDialer is Dialer for code paths that cannot return an error (the reader
// configuration); see failingTLS.
func (c Config) mustDialer() *kafka.Dialer {
	d, err := c.Dialer()
	if err != nil {
		return &kafka.Dialer{ClientID: c.withDefaults().ClientID, Timeout: dialTimeout, DualStack: true, TLS: failingTLS(err)}
	}
	return d
}

// mustTransport is Transport for code paths that cannot return an error; see failingTLS.
func (c Config) mustTransport() *kafka.Transport {
	t, err := c.Transport()
	if err != nil {
		return &kafka.Transport{ClientID: c.withDefaults().ClientID, DialTimeout: dialTimeout, TLS: failingTLS(err)}
	}
	return t
}
