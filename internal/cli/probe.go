package cli

import "github.com/spf13/cobra"

func newProbeCmd(_ *env) *cobra.Command {
	return &cobra.Command{Use: "probe", Short: "(under construction)", Hidden: true}
}
