from mailwarden.cli import main

main()
