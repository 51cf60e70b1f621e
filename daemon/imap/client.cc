#include "imap/client.h"
