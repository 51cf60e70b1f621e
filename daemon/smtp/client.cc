#include "smtp/client.h"
