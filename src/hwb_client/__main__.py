import sys

from hwb_client.launch import main

sys.exit(main())
