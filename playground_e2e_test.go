package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPlaygroundBrowser loads /playground in headless Chromium with no
// internet, runs { viewer { role } } with a token and checks the answer. It
// needs Chromium and playwright-core, which `make test-e2e` installs first,
// so it runs only when CRMHUB_E2E=1 (set by `make test-e2e`, which CI runs).
func TestPlaygroundBrowser(t *testing.T) {
	if os.Getenv("CRMHUB_E2E") != "1" {
		t.Skip("browser test: run `make test-e2e`")
	}
	b := setup(t)
	for _, tc := range []struct{ role, token string }{{"OWNER", b.ownerA}, {"SUPPORT", b.support}} {
		t.Run(tc.role, func(t *testing.T) {
			cmd := exec.Command("node", "--test", "playground.test.mjs")
			cmd.Dir = "e2e"
			cmd.Env = append(os.Environ(),
				"CRMHUB_URL="+b.url,
				"CRMHUB_TOKEN="+tc.token,
				"CRMHUB_EXPECT_ROLE="+tc.role,
				"CRMHUB_SCREENSHOT="+filepath.Join(os.TempDir(), "crmhub-playground-"+tc.role+".png"),
			)
			out, err := cmd.CombinedOutput()
			t.Logf("%s", out)
			require.NoError(t, err, "browser test failed")
		})
	}
}
