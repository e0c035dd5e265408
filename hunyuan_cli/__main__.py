from hunyuan_cli.app import main

main()
