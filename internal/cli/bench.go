package cli

import "github.com/spf13/cobra"

func newBenchCmd(_ *env) *cobra.Command {
	return &cobra.Command{Use: "bench", Short: "(under construction)", Hidden: true}
}
