package cli

import "github.com/spf13/cobra"

func newCertCmd(_ *env) *cobra.Command {
	return &cobra.Command{Use: "cert", Short: "(under construction)", Hidden: true}
}
