from zerog_cli.cli.app import main

main()
