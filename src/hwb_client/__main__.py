import sys

from hwb_client.cli import main

sys.exit(main())
