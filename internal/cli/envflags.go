package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envPrefix begins the environment variable of every flag: --member-listen comes from
// MIRRORKV_MEMBER_LISTEN, --endpoints from MIRRORKV_ENDPOINTS.
const envPrefix = "MIRRORKV_"

// commandLineOnly is the annotation of a flag the environment never fills.
const commandLineOnly = "mirrorkv_command_line_only"

// envName is the environment variable of the flag called name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// fillFromEnv gives every flag of cmd that its command line did not set its value from the
// environment, when the variable is set and not empty: flags win over the environment. It
// walks cmd's own flags and the persistent flags of cmd and its parents, because a local
// flag of the same name hides an inherited one from cmd.Flags (member add's --cert hides the
// connection's --cert), and the hidden one must still be filled.
func fillFromEnv(cmd *cobra.Command, getenv func(string) string) error {
	seen := map[*pflag.Flag]bool{}
	var errs []error
	fill := func(fl *pflag.Flag) {
		if seen[fl] || fl.Changed || fl.Name == "help" || fl.Annotations[commandLineOnly] != nil {
			return
		}
		seen[fl] = true
		name := envName(fl.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := fl.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s (--%s) %q: %w", name, fl.Name, v, err))
			return
		}
		fl.Changed = true
	}
	cmd.Flags().VisitAll(fill)
	for c := cmd; c != nil; c = c.Parent() {
		c.PersistentFlags().VisitAll(fill)
	}
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

// keepOffEnv marks flags of fs that only the command line may set, and says so in their
// help: a flag named like a connection flag but naming another file (a variable exported
// for the connection would silently name the wrong file), or one that consents to an
// unsafe step of the CA (consent is given each time, not left in a shell's environment).
func keepOffEnv(fs *pflag.FlagSet, names ...string) {
	for _, name := range names {
		fl := fs.Lookup(name)
		if fl == nil {
			continue
		}
		fl.Usage += " (command line only, never from " + envName(name) + ")"
		// SetAnnotation fails only for a flag that does not exist, checked above.
		_ = fs.SetAnnotation(name, commandLineOnly, []string{"true"})
	}
}
