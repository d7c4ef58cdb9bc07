package cli

import "github.com/spf13/cobra"

func newDemoCmd(_ *env) *cobra.Command {
	return &cobra.Command{Use: "demo", Short: "(under construction)", Hidden: true}
}
