// Package certs keeps a local certificate authority and the registry's server
// certificate, renews the certificate before it expires and serves it through
// tls.Config.GetCertificate so rotation needs no restart. Standard library only.
package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/idpbuilder/idpbuilder/internal/atomicfile"
)

// File names inside the certificate directory.
const (
	CAFile     = "ca.crt"
	CAKeyFile  = "ca.key"
	CertFile   = "server.crt"
	KeyFile    = "server.key"
	dirMode    = 0o700
	keyMode    = 0o600
	publicMode = 0o644
)

// DefaultNames are the names the registry is always reachable by on this machine.
var DefaultNames = []string{"localhost", "127.0.0.1", "::1", "host.docker.internal"}

// Manager owns the CA and the server certificate in Dir.
type Manager struct {
	// Dir holds ca.crt, ca.key, server.crt and server.key.
	Dir string
	// Names are the DNS names and IP addresses the certificate must cover.
	Names []string
	// Lifetime of server certificates (default 90 days); renewed when a third is left.
	Lifetime time.Duration
	// CALifetime is the CA's lifetime (default 10 years).
	CALifetime time.Duration
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time

	mu   sync.Mutex
	ca   *x509.Certificate
	caK  crypto.Signer
	cur  *tls.Certificate
	leaf *x509.Certificate
	// certMod is the modification time of the server certificate we hold, so a
	// certificate rotated by another process (`registry cert rotate`) is picked up.
	certMod time.Time
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) lifetime() time.Duration {
	if m.Lifetime > 0 {
		return m.Lifetime
	}
	return 90 * 24 * time.Hour
}

func (m *Manager) caLifetime() time.Duration {
	if m.CALifetime > 0 {
		return m.CALifetime
	}
	return 10 * 365 * 24 * time.Hour
}

// Ensure loads the CA and server certificate from Dir, creating the CA if there is
// none and issuing a server certificate if there is none, it does not cover Names,
// or a third or less of its lifetime is left. It reports whether it issued one.
func (m *Manager) Ensure() (renewed bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := os.MkdirAll(m.Dir, dirMode); err != nil {
		return false, fmt.Errorf("certificate dir: %w", err)
	}
	if err := os.Chmod(m.Dir, dirMode); err != nil {
		return false, fmt.Errorf("certificate dir: %w", err)
	}
	if m.ca == nil {
		if err := m.loadOrCreateCA(); err != nil {
			return false, err
		}
	}
	certPath := filepath.Join(m.Dir, CertFile)
	if info, err := os.Stat(certPath); err == nil && (m.cur == nil || !info.ModTime().Equal(m.certMod)) {
		if c, leaf, err := loadPair(certPath, filepath.Join(m.Dir, KeyFile)); err == nil {
			m.cur, m.leaf, m.certMod = c, leaf, info.ModTime()
		}
	}
	if m.leaf != nil && !m.needsRenewal(m.leaf) {
		return false, nil
	}
	if err := m.issue(); err != nil {
		return false, err
	}
	return true, nil
}

// needsRenewal: expiring (a third of the lifetime or less left), not yet valid,
// not signed by our CA, or missing one of Names.
func (m *Manager) needsRenewal(leaf *x509.Certificate) bool {
	now := m.now()
	total := leaf.NotAfter.Sub(leaf.NotBefore)
	if now.Before(leaf.NotBefore) || leaf.NotAfter.Sub(now) <= total/3 {
		return true
	}
	if leaf.CheckSignatureFrom(m.ca) != nil {
		return true
	}
	for _, n := range m.names() {
		if leaf.VerifyHostname(n) != nil {
			return true
		}
	}
	return false
}

func (m *Manager) names() []string {
	all := append(slices.Clone(DefaultNames), m.Names...)
	slices.Sort(all)
	return slices.Compact(all)
}

// Rotate issues a new server certificate now.
func (m *Manager) Rotate() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ca == nil {
		if err := m.loadOrCreateCA(); err != nil {
			return err
		}
	}
	return m.issue()
}

// GetCertificate is for tls.Config: it always returns the current certificate.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil {
		return nil, errors.New("no server certificate yet")
	}
	return m.cur, nil
}

// Leaf returns the current server certificate.
func (m *Manager) Leaf() *x509.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leaf
}

// CAPEM returns the CA certificate, PEM encoded (what clients must trust).
func (m *Manager) CAPEM() ([]byte, error) {
	return os.ReadFile(filepath.Join(m.Dir, CAFile))
}

// Run re-checks the certificate every interval until ctx ends, renewing it when
// needed and picking up one rotated on disk; onRenew (if set) hears of each
// change or failure.
func (m *Manager) Run(ctx context.Context, interval time.Duration, onRenew func(leaf *x509.Certificate, err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			before := m.Leaf()
			_, err := m.Ensure()
			after := m.Leaf()
			changed := before == nil || after == nil || before.SerialNumber.Cmp(after.SerialNumber) != 0
			if onRenew != nil && (changed || err != nil) {
				onRenew(after, err)
			}
		}
	}
}

func (m *Manager) loadOrCreateCA() error {
	certPath, keyPath := filepath.Join(m.Dir, CAFile), filepath.Join(m.Dir, CAKeyFile)
	if c, leaf, err := loadPair(certPath, keyPath); err == nil {
		signer, ok := c.PrivateKey.(crypto.Signer)
		if !ok {
			return fmt.Errorf("%s: key cannot sign", keyPath)
		}
		m.ca, m.caK = leaf, signer
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("load CA from %s: %w (move the files away to create a new CA)", m.Dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := m.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "idpbuilder local CA", Organization: []string{"idpbuilder"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(m.caLifetime()),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return err
	}
	m.ca, _ = x509.ParseCertificate(der)
	m.caK = key
	return nil
}

// issue signs a new server certificate for names and makes it current.
func (m *Manager) issue() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := m.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "idpbuilder registry", Organization: []string{"idpbuilder"}},
		// Backdated a little for clocks that lag, never by a noticeable share of the lifetime.
		NotBefore:   now.Add(-min(5*time.Minute, m.lifetime()/100)),
		NotAfter:    now.Add(m.lifetime()),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range m.names() {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.ca, &key.PublicKey, m.caK)
	if err != nil {
		return fmt.Errorf("sign server certificate: %w", err)
	}
	if err := writePair(filepath.Join(m.Dir, CertFile), filepath.Join(m.Dir, KeyFile), der, key); err != nil {
		return err
	}
	leaf, _ := x509.ParseCertificate(der)
	m.cur = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	m.leaf = leaf
	if info, err := os.Stat(filepath.Join(m.Dir, CertFile)); err == nil {
		m.certMod = info.ModTime()
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func loadPair(certPath, keyPath string) (*tls.Certificate, *x509.Certificate, error) {
	if _, err := os.Stat(certPath); err != nil {
		return nil, nil, err
	}
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, nil, err
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	c.Leaf = leaf
	return &c, leaf, nil
}

// writePair writes the certificate (0644) and the key (0600), each atomically.
func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), keyMode); err != nil {
		return err
	}
	return atomicfile.Write(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), publicMode)
}

// Fingerprint is the SHA-256 of a certificate, hex with colons (as browsers show it).
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := hex.EncodeToString(sum[:])
	out := make([]byte, 0, len(h)+len(h)/2)
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, h[i], h[i+1])
	}
	return string(out)
}

// LoadStatic loads a bring-your-own certificate and key for GetCertificate.
func LoadStatic(certPath, keyPath string) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), *x509.Certificate, error) {
	c, leaf, err := loadPair(certPath, keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load TLS certificate %s / key %s: %w", certPath, keyPath, err)
	}
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c, nil }, leaf, nil
}
