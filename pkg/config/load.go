package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Sources are the inputs Load merges over the defaults.
type Sources struct {
	// File is the config file path. Empty means the default file
	// ($XDG_CONFIG_HOME/idpbuilder/config.yaml or ~/.config/idpbuilder/config.yaml),
	// which is read only if it exists. An explicit path must exist.
	File string
	// Env looks up environment variables; nil means none are set.
	Env func(string) (string, bool)
	// Flags holds the flags the user set explicitly, by flag name, rendered as strings.
	Flags map[string]string
}

// Load builds the configuration: defaults, then the file, then the environment,
// then flags; and validates the result. Every error is an *Error (or a join of them).
func Load(src Sources) (Config, error) {
	env := src.Env
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	cfg := Default(env)
	cfg.Origins = map[string]string{}
	settings := Settings()

	path, explicit := src.File, src.File != ""
	if !explicit {
		path = defaultFile(env)
	}
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			if err := applyYAML(&cfg, path, data, settings); err != nil {
				return Config{}, err
			}
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			// No default file: that is fine.
		default:
			return Config{}, &Error{Source: "config file", Err: fmt.Errorf("cannot read %s: %w", path, err)}
		}
	}

	var errs []error
	for _, s := range settings {
		source, v, ok := "flag --"+s.Flag, "", false
		if v, ok = src.Flags[s.Flag]; !ok {
			source = "env " + s.Env()
			v, ok = env(s.Env())
		}
		if !ok {
			continue
		}
		if err := s.set(&cfg, v); err != nil {
			errs = append(errs, &Error{Source: source, Key: s.Key, Err: err})
			continue
		}
		cfg.Origins[s.Key] = source
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func defaultFile(env func(string) (string, bool)) string {
	if v, ok := env("XDG_CONFIG_HOME"); ok && filepath.IsAbs(v) {
		return filepath.Join(v, "idpbuilder", "config.yaml")
	}
	if home, ok := env("HOME"); ok && home != "" {
		return filepath.Join(home, ".config", "idpbuilder", "config.yaml")
	}
	return ""
}

// applyYAML walks the document and applies each scalar to the setting with the same
// dotted key. Unknown keys and non-scalar values are errors that carry the line.
func applyYAML(cfg *Config, path string, data []byte, settings []Setting) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return &Error{Source: path, Err: fmt.Errorf("not valid YAML: %w", err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return &Error{Source: fmt.Sprintf("%s:%d", path, root.Line), Err: errors.New("the top level must be a mapping of keys (e.g. registry:)")}
	}
	byKey := make(map[string]Setting, len(settings))
	for _, s := range settings {
		byKey[s.Key] = s
	}
	var errs []error
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + k.Value
			}
			where := fmt.Sprintf("%s:%d", path, k.Line)
			if s, ok := byKey[key]; ok {
				if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
					errs = append(errs, &Error{Source: where, Key: key, Err: errors.New("needs a single value")})
					continue
				}
				if err := s.set(cfg, v.Value); err != nil {
					errs = append(errs, &Error{Source: where, Key: key, Err: err})
					continue
				}
				cfg.Origins[key] = where
				continue
			}
			if isSection(key, byKey) {
				if v.Kind != yaml.MappingNode {
					errs = append(errs, &Error{Source: where, Key: key, Err: errors.New("is a section: put its keys under it (e.g. registry:\n  addr: 127.0.0.1:5001)")})
					continue
				}
				walk(key, v)
				continue
			}
			errs = append(errs, &Error{Source: where, Key: key, Err: fmt.Errorf("unknown key (known keys: %s)", knownKeys(settings))})
		}
	}
	walk("", root)
	return errors.Join(errs...)
}

func isSection(prefix string, byKey map[string]Setting) bool {
	for k := range byKey {
		if strings.HasPrefix(k, prefix+".") {
			return true
		}
	}
	return false
}

func knownKeys(settings []Setting) string {
	keys := make([]string, 0, len(settings))
	for _, s := range settings {
		keys = append(keys, s.Key)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}
