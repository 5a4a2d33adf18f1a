package steps

import (
	"encoding/base64"
	"os"
)

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

// basicAuth is an Authorization header value for user and password.
func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}
