from ssseg.cli import main

main()
