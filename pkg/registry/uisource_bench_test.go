package registry

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"

	"github.com/idpbuilder/idpbuilder/pkg/auth"
	"github.com/idpbuilder/idpbuilder/pkg/ui"
)

// BenchmarkUIPages renders the repository list at 1,000 repositories and a
// repository page of 200 tags, through the whole handler (server time, no
// network). "warm" is every view after the first; "cold" forgets what the UI
// knows of the repositories first (as after a restart).
func BenchmarkUIPages(b *testing.B) {
	s := startUIServer(b, auth.PolicyNone)
	img := s.pushImage("seed:v1", 256, 2)
	for i := range 1000 {
		s.copyImage(img, "seed", fmt.Sprintf("team%d/app%04d", i%10, i), "v1")
	}
	for i := range 200 {
		img, err := random.Image(256, 2)
		require.NoError(b, err)
		require.NoError(b, remote.Write(s.ref(fmt.Sprintf("big:v%03d", i)), img))
	}
	render := func(b *testing.B, path, want string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Host = s.host
		rec := httptest.NewRecorder()
		s.reg.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			b.Fatalf("%s: %d\n%s", path, rec.Code, rec.Body)
		}
	}
	forget := func() {
		src := s.reg.ui
		src.mu.Lock()
		src.names, src.repos = nil, map[string]*uiRepo{}
		src.mu.Unlock()
	}
	b.Run("repositories-1000/warm", func(b *testing.B) {
		render(b, "/ui/", "1–50 of 1002")
		for b.Loop() {
			render(b, "/ui/?page=7", "301–350 of 1002")
		}
	})
	b.Run("repositories-1000/search", func(b *testing.B) {
		for b.Loop() {
			render(b, "/ui/?q=app09", "of 100 ")
		}
	})
	b.Run("repositories-1000/cold", func(b *testing.B) {
		for b.Loop() {
			forget()
			render(b, "/ui/", "1–50 of 1002")
		}
	})
	b.Run("repository-200-tags/warm", func(b *testing.B) {
		render(b, "/ui/repo/big", `data-tag="v199"`)
		for b.Loop() {
			render(b, "/ui/repo/big?sort=name", `data-tag="v099"`)
		}
	})
	b.Run("repository-200-tags/cold", func(b *testing.B) {
		for b.Loop() {
			forget()
			s.reg.uiH.(*ui.Handler).ForgetSummaries()
			render(b, "/ui/repo/big", `data-tag="v199"`)
		}
	})
}
