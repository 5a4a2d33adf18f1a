package auth

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func helper(t *testing.T, store CredStore, action, in string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := ServeHelper(store, action, strings.NewReader(in), &out)
	return out.String(), err
}

func TestCredentialHelperProtocol(t *testing.T) {
	store := CredStore{Path: filepath.Join(t.TempDir(), "auth", "credentials.json")}

	out, err := helper(t, store, "get", "localhost:5001\n")
	require.Error(t, err)
	assert.Equal(t, "credentials not found in native keychain\n", out, "docker matches this text")

	_, err = helper(t, store, "store", `{"ServerURL":"https://localhost:5001","Username":"alice","Secret":"s3cret-pw"}`)
	require.NoError(t, err)
	info, err := os.Stat(store.Path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	for _, form := range []string{"localhost:5001", "https://localhost:5001", "https://localhost:5001/v2/", "http://localhost:5001/"} {
		out, err = helper(t, store, "get", form)
		require.NoError(t, err, form)
		var cr Credentials
		require.NoError(t, json.Unmarshal([]byte(out), &cr))
		assert.Equal(t, Credentials{ServerURL: "localhost:5001", Username: "alice", Secret: "s3cret-pw"}, cr, form)
	}

	out, err = helper(t, store, "list", "")
	require.NoError(t, err)
	assert.JSONEq(t, `{"localhost:5001":"alice"}`, out)

	_, err = helper(t, store, "erase", "localhost:5001")
	require.NoError(t, err)
	_, err = helper(t, store, "get", "localhost:5001")
	assert.ErrorIs(t, err, ErrCredentialsNotFound)

	for _, bad := range []struct{ action, in string }{{"store", "not json"}, {"get", ""}, {"frobnicate", ""}, {"store", `{"ServerURL":"x"}`}} {
		out, err := helper(t, store, bad.action, bad.in)
		assert.Error(t, err, bad)
		assert.NotEmpty(t, out, "errors are written where docker reads them")
	}
}

func TestSetCredHelperKeepsOtherKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".docker", "config.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	orig := `{
	"auths": {"ghcr.io": {"auth": "eDp5"}},
	"credHelpers": {"gcr.io": "gcloud"},
	"psFormat": "table {{.ID}}",
	"proxies": {"default": {"noProxy": "localhost"}}
}`
	require.NoError(t, os.WriteFile(path, []byte(orig), 0o640))
	require.NoError(t, SetCredHelper(path, "https://localhost:5001"))

	var got map[string]any
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &got))
	assert.Equal(t, map[string]any{"gcr.io": "gcloud", "localhost:5001": "idpbuilder"}, got["credHelpers"])
	assert.Equal(t, map[string]any{"ghcr.io": map[string]any{"auth": "eDp5"}}, got["auths"])
	assert.Equal(t, "table {{.ID}}", got["psFormat"])
	assert.Contains(t, got, "proxies")
	info, _ := os.Stat(path)
	assert.Equal(t, os.FileMode(0o640), info.Mode().Perm(), "the file keeps its mode")

	// A broken config is left alone.
	require.NoError(t, os.WriteFile(path, []byte("{broken"), 0o600))
	require.Error(t, SetCredHelper(path, "localhost:5001"))
	data, _ = os.ReadFile(path)
	assert.Equal(t, "{broken", string(data))

	// A missing one is created.
	fresh := filepath.Join(t.TempDir(), "new", "config.json")
	require.NoError(t, SetCredHelper(fresh, "localhost:5001"))
	data, _ = os.ReadFile(fresh)
	assert.JSONEq(t, `{"credHelpers":{"localhost:5001":"idpbuilder"}}`, string(data))
}
