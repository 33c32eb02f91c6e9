from aedetect.cli import main

main()
