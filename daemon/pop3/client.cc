#include "pop3/client.h"
