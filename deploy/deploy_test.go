package deploy

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerStage is one FROM … stage of a Dockerfile: its base and its instructions.
type dockerStage struct {
	from  string
	lines []string // instructions after FROM, continuation lines joined
}

func parseDockerfile(t *testing.T, path string) []dockerStage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []dockerStage
	sc := bufio.NewScanner(f)
	var cont string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if before, ok := strings.CutSuffix(line, `\`); ok {
			cont += before + " "
			continue
		}
		line, cont = cont+line, ""
		if from, ok := strings.CutPrefix(line, "FROM "); ok {
			stages = append(stages, dockerStage{from: from})
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %q before the first FROM", path, line)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

// No container runtime runs here, so the image is not built: the build stage's commands
// are run as they are written, from the repository's root with /out under a temporary
// directory, and the binary they make must be static (the final stage is empty: no libc),
// and run. The final stage is checked to hold no shell and to run as a user that is not root.
func TestDockerfile(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, filepath.Join(root, "deploy", "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build stage and a run stage", len(stages))
	}
	out := t.TempDir()
	ran := 0
	for _, line := range stages[0].lines {
		cmd, ok := strings.CutPrefix(line, "RUN ")
		if !ok {
			continue
		}
		sh := exec.Command("sh", "-c", strings.ReplaceAll(cmd, "/out/", out+"/"))
		sh.Dir = root
		if b, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("RUN %s: %v\n%s", cmd, err, b)
		}
		ran++
	}
	if ran < 2 {
		t.Fatalf("the build stage ran %d commands, want the download and the build at least", ran)
	}
	bin := filepath.Join(out, "usr", "local", "bin", "mirrorkv")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("the build stage made no binary at /out/usr/local/bin/mirrorkv: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary needs a dynamic loader; the scratch image has none (build with CGO_ENABLED=0)")
		}
	}
	f.Close()
	if b, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.Contains(string(b), "mirrorkv") {
		t.Fatalf("%s version: %v\n%s", bin, err, b)
	}
	if fi, err := os.Stat(filepath.Join(out, "var", "lib", "mirrorkv")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the data directory: %v, %v; want mode 0700", fi, err)
	}

	run := stages[1]
	if run.from != "scratch" {
		t.Errorf("the run stage is FROM %s; want scratch, with no shell", run.from)
	}
	var user, entry string
	for _, line := range run.lines {
		switch {
		case strings.HasPrefix(line, "USER "):
			user = strings.TrimPrefix(line, "USER ")
		case strings.HasPrefix(line, "ENTRYPOINT "):
			entry = strings.TrimPrefix(line, "ENTRYPOINT ")
		case strings.HasPrefix(line, "RUN "):
			t.Errorf("the run stage has %q: there is no shell to run it", line)
		}
	}
	if user == "" || regexp.MustCompile(`^(root|0)(:|$)`).MatchString(user) {
		t.Errorf("the run stage's USER is %q; want a user that is not root", user)
	}
	if entry != `["/usr/local/bin/mirrorkv"]` {
		t.Errorf("ENTRYPOINT %s; want the exec form naming the binary", entry)
	}
}

// The unit passes systemd-analyze verify (with ExecStart pointed at a binary that exists
// here) and carries the hardening docs/deploy.md promises.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: install Debian's systemd package (.ci/run does)")
	}
	unit, err := os.ReadFile("mirrorkv.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nExecStart=/usr/local/bin/mirrorkv serve ", "\nExecReload=/bin/kill -HUP $MAINPID\n",
		"\nUser=mirrorkv\n", "\nNoNewPrivileges=yes\n", "\nProtectSystem=strict\n",
		"\nReadWritePaths=/var/lib/mirrorkv\n", "\nLimitNOFILE=", "\nCapabilityBoundingSet=\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
	path := filepath.Join(t.TempDir(), "mirrorkv.service")
	self, err := os.Executable() // any executable file will do for ExecStart's check
	if err != nil {
		t.Fatal(err)
	}
	local := strings.ReplaceAll(string(unit), "/usr/local/bin/mirrorkv", self)
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(b) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, b)
	}
	// The verifier has teeth: a misspelt directive fails it.
	bad := strings.Replace(local, "NoNewPrivileges=yes", "NoNewPrivilege=yes", 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := exec.Command(analyze, "verify", path).CombinedOutput(); !strings.Contains(string(b), "NoNewPrivilege") {
		t.Fatalf("systemd-analyze verify says nothing of a misspelt directive:\n%s", b)
	}
}
