package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/idpbuilder/idpbuilder/internal/atomicfile"
)

// HelperName is the credential helper's name: Docker runs docker-credential-<name>.
const HelperName = "idpbuilder"

// ErrCredentialsNotFound is the message Docker expects when a helper has nothing
// for a server (the docker-credential-helpers protocol matches it verbatim).
var ErrCredentialsNotFound = errors.New("credentials not found in native keychain")

// Credentials is the helper protocol's JSON document.
type Credentials struct {
	ServerURL string `json:"ServerURL"`
	Username  string `json:"Username"`
	Secret    string `json:"Secret"`
}

// CredStore keeps credentials in a JSON file readable by its owner only.
type CredStore struct {
	Path string
}

// normalizeServer maps the forms Docker uses for one registry to one key:
// "https://localhost:5001/v2/" and "localhost:5001" are the same server.
func normalizeServer(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "https://")
	s = strings.TrimPrefix(s, "http://")
	s, _, _ = strings.Cut(s, "/")
	return s
}

func (c CredStore) load() (map[string]Credentials, error) {
	data, err := os.ReadFile(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Credentials{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]Credentials{}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("credential store %s is damaged: %w", c.Path, err)
	}
	return m, nil
}

func (c CredStore) save(m map[string]Credentials) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(c.Path, data, 0o600)
}

// Store saves credentials for their server.
func (c CredStore) Store(cr Credentials) error {
	if cr.ServerURL == "" || cr.Username == "" {
		return errors.New("credentials need a ServerURL and a Username")
	}
	m, err := c.load()
	if err != nil {
		return err
	}
	cr.ServerURL = normalizeServer(cr.ServerURL)
	m[cr.ServerURL] = cr
	return c.save(m)
}

// Get returns the credentials for server, or ErrCredentialsNotFound.
func (c CredStore) Get(server string) (Credentials, error) {
	m, err := c.load()
	if err != nil {
		return Credentials{}, err
	}
	cr, ok := m[normalizeServer(server)]
	if !ok {
		return Credentials{}, ErrCredentialsNotFound
	}
	return cr, nil
}

// Erase removes the credentials for server.
func (c CredStore) Erase(server string) error {
	m, err := c.load()
	if err != nil {
		return err
	}
	key := normalizeServer(server)
	if _, ok := m[key]; !ok {
		return ErrCredentialsNotFound
	}
	delete(m, key)
	return c.save(m)
}

// List maps each server to its user name.
func (c CredStore) List() (map[string]string, error) {
	m, err := c.load()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v.Username
	}
	return out, nil
}

// ServeHelper runs one credential-helper action (get, store, erase, list) with
// the protocol's stdin and stdout. Errors are written to out, as Docker reads
// them from there, and returned so the caller exits non-zero.
func ServeHelper(store CredStore, action string, in io.Reader, out io.Writer) error {
	err := serveHelper(store, action, in, out)
	if err != nil {
		fmt.Fprintln(out, err.Error())
	}
	return err
}

func serveHelper(store CredStore, action string, in io.Reader, out io.Writer) error {
	switch action {
	case "store":
		var cr Credentials
		if err := json.NewDecoder(io.LimitReader(in, 1<<20)).Decode(&cr); err != nil {
			return fmt.Errorf("store: want a JSON document with ServerURL, Username and Secret: %w", err)
		}
		return store.Store(cr)
	case "get":
		server, err := readLine(in)
		if err != nil {
			return err
		}
		cr, err := store.Get(server)
		if err != nil {
			return err
		}
		return json.NewEncoder(out).Encode(cr)
	case "erase":
		server, err := readLine(in)
		if err != nil {
			return err
		}
		return store.Erase(server)
	case "list":
		m, err := store.List()
		if err != nil {
			return err
		}
		return json.NewEncoder(out).Encode(m) // encoding/json sorts the keys
	}
	return fmt.Errorf("unknown credential helper action %q (use get, store, erase or list)", action)
}

func readLine(in io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(in, 4096))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("no server URL on stdin")
	}
	return s, nil
}

// SetCredHelper makes Docker use this helper for server in the Docker config
// file at path (created if missing), rewriting it atomically and keeping every
// other key as it was.
func SetCredHelper(path, server string) error {
	doc := map[string]json.RawMessage{}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, &doc); err != nil {
				return fmt.Errorf("%s is not valid JSON (left untouched): %w", path, err)
			}
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	helpers := map[string]string{}
	if raw, ok := doc["credHelpers"]; ok {
		if err := json.Unmarshal(raw, &helpers); err != nil {
			return fmt.Errorf("%s: credHelpers is not an object (left untouched): %w", path, err)
		}
	}
	helpers[normalizeServer(server)] = HelperName
	raw, err := json.Marshal(helpers)
	if err != nil {
		return err
	}
	doc["credHelpers"] = raw
	out, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return err
	}
	perm := os.FileMode(0o600)
	if info, err := os.Stat(path); err == nil {
		perm = info.Mode().Perm()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, append(out, '\n'), perm)
}
